import StasisProc
import Testing

/// /proc/PID/stat and /proc/PID/status as the tree checkpoint reads them (Checkpoint/Tree/TreeFreeze.swift).
struct ProcessStatTests {
    private func stat(_ text: String) -> ProcessStat? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { ProcessStat.parse($0.baseAddress!, count: $0.count) }
    }

    /// Fields 1-52 of a zombie: state Z, ppid 100, pgrp 101, session 102, exit signal 17, exit code 0x2a00.
    @Test func aZombieWithAStrangeNameParses() throws {
        var fields = (4...52).map { _ in "0" }
        fields[4 - 4] = "100"
        fields[5 - 4] = "101"
        fields[6 - 4] = "102"
        fields[38 - 4] = "17"
        fields[52 - 4] = "10752"
        let parsed = try #require(stat("4242 (a) b (c)) Z " + fields.joined(separator: " ") + "\n"))
        #expect(parsed.isZombie && !parsed.isStopped)
        #expect(parsed.ppid == 100 && parsed.pgrp == 101 && parsed.session == 102)
        #expect(parsed.exitSignal == 17 && parsed.exitCode == 42 << 8)
    }

    @Test func stoppedAndTracedAreStopped() throws {
        #expect(try #require(stat("7 (x) T 1 7 7 0")).isStopped)
        #expect(try #require(stat("7 (x) t 1 7 7 0")).isStopped)
        #expect(try #require(stat("7 (x) S 1 7 7 0")).isStopped == false)
    }

    @Test func truncatedTextIsNil() {
        #expect(stat("7 (x") == nil)
        #expect(stat("7 (x) S 1") == nil)
    }

    @Test func statusGivesTheMasksAndTheTracer() {
        let text = Array("Name:\tsleep\nSigBlk:\t0000000000000800\nSigCgt:\t0000000000000a00\nTracerPid:\t31\n".utf8)
        let status = text.withUnsafeBufferPointer { ProcessStatus.parse($0.baseAddress!, count: $0.count) }
        #expect(status.blocked == 0x800 && status.caught == 0xa00 && status.tracerPID == 31)
    }
}
