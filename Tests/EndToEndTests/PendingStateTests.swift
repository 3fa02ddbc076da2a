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
