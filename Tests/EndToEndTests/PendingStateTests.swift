import Glibc
import Testing

/// Timers of every kind with expirations pending at the checkpoint (issue 11, item 1): a periodic
/// timerfd not read for over a second must come back armed, with its interval and its unread count.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct PendingTimerTests {
    @Test func timersWithPendingExpirationsStayArmedThroughThreeRestarts() throws {
        let scratch = Scratch()
        let binary = try compileFixture("timer-kinds", into: scratch.path)
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output,
                                                         delay: 300_000...600_000)
        usleep(100_000)
        kill(pid, SIGTERM)
        #expect(try restart.wait(seconds: 60) == .exited(0))
        let text = (try? String(contentsOfFile: output)) ?? ""
        #expect(text.contains("PASS"), "\(text)")
    }
}

/// Signals pending at the checkpoint, each with its siginfo (issue 11, item 2): real-time signals
/// queued several times keep every instance and value, in order; standard ones keep their sender;
/// process-directed and thread-directed queues stay apart.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct QueuedSignalTests {
    @Test func queuedSignalsKeepTheirSiginfoThroughThreeRestarts() throws {
        let scratch = Scratch()
        let binary = try compileFixture("queued-signals", into: scratch.path)
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output)
        usleep(100_000)
        kill(pid, SIGTERM)
        #expect(try restart.wait(seconds: 60) == .exited(0))
        let text = (try? String(contentsOfFile: output)) ?? ""
        #expect(text.contains("PASS"), "\(text)")
    }

    /// The running program keeps them too: the checkpoint takes them out to read them and puts them back.
    @Test(arguments: [false, true])
    func queuedSignalsSurviveCheckpointsOfTheRunningProgram(inPlace: Bool) throws {
        let scratch = Scratch()
        let binary = try compileFixture("queued-signals", into: scratch.path)
        let output = scratch.file("out")
        let options = inPlace ? ["--no-fork"] : []
        let live = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path] + options + ["--", binary], outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        for cycle in 1...3 {
            let (code, text) = try Stasis.run(["checkpoint", String(live.pid)], in: scratch.path)
            #expect(code == 0, "cycle \(cycle): \(text)")
        }
        kill(live.pid, SIGTERM)
        #expect(try live.wait(seconds: 60) == .exited(0))
        let text = (try? String(contentsOfFile: output)) ?? ""
        #expect(text.contains("PASS"), "\(text)")
    }
}
