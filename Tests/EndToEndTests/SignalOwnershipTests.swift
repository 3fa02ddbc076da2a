import Glibc
import Testing

/// A program that installs its own handler for the trigger signal and blocks it keeps both, while
/// `stasis checkpoint` (a sigqueue'd request) still checkpoints it. Its own SIGUSR2s sent while it
/// blocks them stay pending (one thread-directed, one process-directed) through three checkpoint and
/// restart cycles, and are handled once it unblocks them.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SignalOwnershipTests {
    @Test(.timeLimit(.minutes(4))) func programKeepsItsOwnBlockedSIGUSR2PendingAcrossCheckpoints() throws {
        let scratch = Scratch()
        let binary = try compileFixture("own-usr2", into: scratch.path)
        let output = scratch.file("out")
        func text() -> String { (try? String(contentsOfFile: output)) ?? "" }
        var sentBlocked = false
        let (restart, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output) { cycle, pid in
            if cycle == 1 {
                // The raise() after blocking is pending, not handled.
                #expect(text().contains("usr2 1") && text().contains("pending 1"), "\(text())")
                kill(pid, SIGUSR2)  // the program's (a plain kill), process-directed: pending too
                sentBlocked = true
            }
            usleep(300_000)
            #expect(!text().contains("usr2 2"), "cycle \(cycle): a blocked SIGUSR2 was handled: \(text())")
            #expect(!text().contains("pending 0"), "cycle \(cycle): the pending SIGUSR2 was lost: \(text())")
        }
        #expect(sentBlocked)
        kill(pid, SIGHUP)  // the program unblocks SIGUSR2: both pending instances are handled
        try waitUntil("usr2 3 after unblocking") { text().contains("usr2 3") }
        kill(pid, SIGUSR2)
        try waitUntil("usr2 4") { text().contains("usr2 4") }
        #expect(opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.count == 3, "only the three requested images")
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect(text().contains("PASS usr2 4") && !text().contains("usr2 5"), "\(text())")
    }
}

/// The signal-thread pattern with the trigger signal: every thread blocks SIGUSR2 (workers inherit
/// the main thread's mask) and one takes it with sigwaitinfo. A plain `kill -USR2` goes to that
/// thread, with its sender, before and after each of three checkpoint/restart cycles; the program's
/// handler never runs.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SignalThreadTests {
    @Test(.timeLimit(.minutes(4))) func aSigwaitThreadTakesTheTriggerSignalAcrossCheckpoints() throws {
        let scratch = Scratch()
        let binary = try compileFixture("usr2-waiter", into: scratch.path)
        let output = scratch.file("out")
        func text() -> String { (try? String(contentsOfFile: output)) ?? "" }
        let me = getpid()
        let (restart, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output) { cycle, pid in
            kill(pid, SIGUSR2)
            try waitUntil("waited \(cycle) after restart \(cycle)") { text().contains("waited \(cycle) from \(me)") }
        }
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect(text().contains("PASS"), "\(text())")
    }
}
