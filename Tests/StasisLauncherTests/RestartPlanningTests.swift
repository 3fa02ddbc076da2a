import CStasisABI
import Glibc
import StasisImage
import Testing
@testable import StasisLauncher

/// Decisions `stasis restart` makes without a process: options, ownership, PID choice, the
/// restorer's report, the pager's verdict and the exit status.
struct RestartPlanningTests {
    @Test func parsesEveryRestartOption() throws {
        let options = try #require(try RestartOptions(["--pid-file", "p", "--key", "k", "--interval", "2m", "--dir", "d",
                                                       "--eager", "--allow-changed-files", "--fd", "3=/log", "--fd=4=inherit", "img"]))
        #expect(options.imagePath == "img")
        #expect(options.pidFile == "p" && options.keyPath == "k" && options.directory == "d")
        #expect(options.interval == 120)
        #expect(options.eager && options.allowChangedFiles)
        #expect(options.descriptorOverrides == ["3=/log", "4=inherit"])
        let plain = try #require(try RestartOptions(["img"]))
        #expect(plain.interval == nil && !plain.eager && plain.descriptorOverrides.isEmpty)
    }

    @Test func helpIsNotAnError() throws {
        #expect(try RestartOptions(["--help"]) == nil)
        #expect(try RestartOptions(["--help", "a", "b"]) == nil)
    }

    @Test(arguments: [[], ["a", "b"], ["--interval", "0", "img"], ["--interval", "500ms", "img"], ["--bogus", "img"], ["img", "--key"]])
    func refusesBadRestartCommandLinesAsUsage(_ arguments: [String]) {
        do {
            _ = try RestartOptions(arguments)
            Issue.record("accepted \(arguments)")
        } catch {
            #expect(error.code == .usage)
        }
    }

    @Test func rootMayRestartAnything() {
        var process = ProcessRecord()
        process.uid = 1000
        process.effectiveCapabilities = 0x20
        #expect(RestartCommand.ownershipRefusal(caller: 0, fileOwner: 1000, path: "i", process: process) == nil)
    }

    @Test func anOrdinaryUserMayRestartOnlyTheirOwnUnprivilegedImages() throws {
        var process = ProcessRecord()
        process.uid = 1000
        process.euid = 1000
        #expect(RestartCommand.ownershipRefusal(caller: 1000, fileOwner: 1000, path: "i", process: process) == nil)
        let otherFile = try #require(RestartCommand.ownershipRefusal(caller: 1000, fileOwner: 1001, path: "i", process: process))
        #expect(otherFile.code == .permissionDenied && otherFile.message.contains("belongs to uid 1001"))
        process.effectiveCapabilities = 0x2000
        let privileged = try #require(RestartCommand.ownershipRefusal(caller: 1000, fileOwner: 1000, path: "i", process: process))
        #expect(privileged.code == .permissionDenied && privileged.message.contains("capabilities (0x2000)"))
        process.effectiveCapabilities = 0
        process.euid = 0
        let setuid = try #require(RestartCommand.ownershipRefusal(caller: 1000, fileOwner: 1000, path: "i", process: process))
        #expect(setuid.code == .permissionDenied && setuid.message.contains("uid 1000/euid 0"))
    }

    @Test func saysWhyTheProgramDidNotGetItsPID() {
        #expect(Restorer.pidRefusal(wanted: 100, setTIDError: EEXIST) == "PID 100 is in use")
        #expect(Restorer.pidRefusal(wanted: 100, setTIDError: EPERM) == "choosing PIDs on the host needs root or CAP_CHECKPOINT_RESTORE")
        #expect(Restorer.pidRefusal(wanted: 100, setTIDError: EINVAL).hasPrefix("clone3 set_tid failed ("))
    }

    @Test func aRestorerReportWithoutOkMapsToExitCodes() {
        let corrupt = Restorer.failure([.warning("w"), .error("e"), .corrupt("page crc")], waitStatus: 86 << 8, imagePath: "x.stasis")
        #expect(corrupt.code == .badImage)
        #expect(corrupt.message == "x.stasis is damaged: page crc; restart an older image (`stasis verify` checks one)")
        let failed = Restorer.failure([.error("cannot map"), .error("second")], waitStatus: 86 << 8, imagePath: "x.stasis")
        #expect(failed.code == .restoreFailed)
        #expect(failed.message == "restore of x.stasis failed: cannot map")
        let silent = Restorer.failure([], waitStatus: 127 << 8, imagePath: "x.stasis")
        #expect(silent.code == .restoreFailed)
        #expect(silent.message.hasSuffix("the restorer exited without a report (status \(127 << 8))"))
    }

    @Test(arguments: [("ok\n", true), ("warning w\nok\n", true), ("xok\n", false), ("ok", false), ("warning w\n", false), ("", false)])
    func recognisesTheOkLine(_ text: String, _ done: Bool) {
        #expect(Restorer.endsWithOKLine(Array(text.utf8)) == done)
    }

    @Test func aPagerVerdictNamesTheWorstProblem() {
        #expect(SignalForwarder.pagerReport([]).verdict == nil)
        #expect(SignalForwarder.pagerReport([.ok, .warning("w")]).verdict == nil)
        let error = SignalForwarder.pagerReport([.error("cannot read")])
        #expect(error.verdict == .restoreFailed && error.messages == ["cannot read"])
        let both = SignalForwarder.pagerReport([.corrupt("crc"), .error("then this")])
        #expect(both.verdict == .badImage && both.messages == ["crc", "then this"])
        #expect(SignalForwarder.pagerReport([.error("first"), .corrupt("crc")]).verdict == .badImage)
    }

    @Test func endsAsTheProgramDid() {
        #expect(SignalForwarder.ending(waitStatus: 3 << 8, pagerVerdict: nil) == .exit(3))
        #expect(SignalForwarder.ending(waitStatus: 0, pagerVerdict: .badImage) == .exit(0))
        #expect(SignalForwarder.ending(waitStatus: SIGTERM, pagerVerdict: nil) == .dieOf(SIGTERM))
        #expect(SignalForwarder.ending(waitStatus: SIGKILL, pagerVerdict: nil) == .dieOf(SIGKILL))
        #expect(SignalForwarder.ending(waitStatus: SIGKILL, pagerVerdict: .badImage) == .exit(3))
        #expect(SignalForwarder.ending(waitStatus: SIGSEGV, pagerVerdict: .restoreFailed) == .dieOf(SIGSEGV))
    }

    @Test func forwardsTheSignalsTheDocsList() {
        #expect(Set(SignalForwarder.forwarded) == [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH,
                                                    SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGPWR, SIGVTALRM, SIGPROF, SIGXCPU])
        #expect(!SignalForwarder.forwarded.contains(SIGCHLD))
    }
}

/// The restore plan's bytes, as stasis_restore_plan.h lays them out for the restorer.
struct RestorePlanTests {
    @Test func laysOutHeaderSegmentsAndChecks() {
        var segment = stasis_page_segment_t()
        segment.address = 0x1000
        let check = stasis_plan_check_t(file_offset: 4096, bytes: 8192, image: 1, crc: 0xabcd)
        let bytes = RestartCommand.planBytes(segments: [segment, segment], checks: [check], parents: 2)
        let headerBytes = MemoryLayout<stasis_restore_plan_header_t>.size
        let segmentBytes = MemoryLayout<stasis_page_segment_t>.size
        #expect(bytes.count == headerBytes + 2 * segmentBytes + MemoryLayout<stasis_plan_check_t>.size)
        let header = bytes.withUnsafeBytes { $0.loadUnaligned(as: stasis_restore_plan_header_t.self) }
        #expect(header.magic == STASIS_PLAN_MAGIC)
        #expect(header.segment_count == 2 && header.image_count == 2 && header.check_count == 1)
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: headerBytes + 2 * segmentBytes, as: stasis_plan_check_t.self) }
        #expect(stored.file_offset == 4096 && stored.bytes == 8192 && stored.image == 1 && stored.crc == 0xabcd)
    }
}

/// `stasis run --pid-namespace` finds PROGRAM as execvp would (it cannot exec in place there).
struct ExecutablePathTests {
    @Test func findsAProgramInPathAndTakesAPathWithASlashAsItIs() {
        #expect(RunCommand.executablePath("sh").map { $0.hasSuffix("/sh") } == true)
        #expect(RunCommand.executablePath("/bin/sh") == "/bin/sh")
        #expect(RunCommand.executablePath("/etc/passwd") == nil, "not executable")
        #expect(RunCommand.executablePath("/bin") == nil, "a directory")
        #expect(RunCommand.executablePath("no-such-program-\(getpid())") == nil)
    }
}
