import Glibc
import Testing

/// A trigger that reaches a process while it execs must not kill it. exec resets handled signals to SIG_DFL
/// before the new image's agent has installed its handler; a tree checkpoint signals every descendant, so
/// one of them is sooner or later caught there. The agent's exec and posix_spawn wrappers block the trigger
/// across the exec and the new image's constructor unblocks it once its handler is in place.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct ExecSafetyTests {
    /// One PID execs itself 2000 times through every exec function while SIGUSR2 arrives every 0.5 ms.
    /// (A trigger that arrives before the new image's main() has installed the program's handler is a
    /// checkpoint: hundreds of images, so --keep 1.)
    @Test(.timeLimit(.minutes(3))) func aProcessExecingUnderATriggerStormSurvives() throws {
        let scratch = Scratch()
        let binary = try compileFixture("exec-storm", into: scratch.path)
        let output = scratch.file("out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--keep", "1", "--", binary, "chain", "2000"],
                                       outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let sent = storm(program.pid, target: program.pid)
        let text = (try? String(contentsOfFile: output)) ?? ""
        let end = try program.wait()
        #expect(end == .exited(0), "\(end): \(text)")
        #expect(text.contains("PASS chain 2000") && !text.contains("FAIL"), "\(text)")
        #expect(sent >= 500, "the storm sent \(sent) signals")
    }

    /// Children started by fork+execve, vfork+execve, fork+execvp, posix_spawn and posix_spawnp while the
    /// whole process group gets SIGUSR2 every 0.5 ms: none dies of it. Before the storm, a child exec'd
    /// without LD_PRELOAD is checked to start with the trigger unblocked (the wrappers leave it alone).
    @Test(.timeLimit(.minutes(3))) func childrenExecingUnderATriggerStormSurvive() throws {
        let scratch = Scratch()
        let binary = try compileFixture("exec-storm", into: scratch.path)
        let output = scratch.file("out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--keep", "1", "--", binary, "spawn", "1000"],
                                       outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") {
            let text = (try? String(contentsOfFile: output)) ?? ""
            return text.contains("READY") || text.contains("FAIL")
        }
        let sent = storm(program.pid, target: -program.pid)  // the fixture leads its own process group
        let text = (try? String(contentsOfFile: output)) ?? ""
        let end = try program.wait()
        #expect(end == .exited(0), "\(end): \(text)")
        #expect(text.contains("PASS spawn 1000") && !text.contains("FAIL"), "\(text)")
        #expect(sent >= 200, "the storm sent \(sent) signals")
    }

    /// Sends SIGUSR2 to `target` (a PID, or minus a process group) every 0.5 ms until `pid` has ended
    /// (a zombie, or gone) or 150 s have passed; returns how many were sent.
    private func storm(_ pid: pid_t, target: pid_t) -> Int {
        let deadline = monotonicNow() + 150
        var sent = 0
        while monotonicNow() < deadline && !hasEnded(pid) {
            if kill(target, SIGUSR2) == 0 { sent += 1 }
            usleep(500)
        }
        return sent
    }

    private func hasEnded(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else {
            return true
        }
        return stat[close...].hasPrefix(") Z")
    }
}
