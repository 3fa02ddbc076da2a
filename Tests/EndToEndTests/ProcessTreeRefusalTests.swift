import Glibc
import Testing

/// Until process trees are checkpointed whole, a process with children (running, or exited and not yet
/// waited for) is refused at checkpoint time, naming a child, and keeps running: otherwise the children
/// would be missing after a restart and a shell's `wait` would report 0 for a job that never finished.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct ProcessTreeRefusalTests {
    @Test(.timeLimit(.minutes(3))) func aProcessWithAChildOrAZombieIsRefusedAndGoesOn() throws {
        let scratch = Scratch()
        let binary = try compileFixture("parent", into: scratch.path)
        let output = scratch.file("out")
        func text() -> String { (try? String(contentsOfFile: output)) ?? "" }
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") { text().contains("READY") }
        let child = text().split(separator: "\n").first { $0.hasPrefix("READY") }.flatMap { Int32($0.dropFirst(6)) } ?? -1

        let (running, runningText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(running == 7, "\(runningText)")
        #expect(runningText.contains("child processes (PID \(child)"), "\(runningText)")

        kill(program.pid, SIGHUP)  // the child exits, unreaped: a zombie is a child too
        try waitUntil("the child is a zombie") {
            ((try? String(contentsOfFile: "/proc/\(child)/stat")) ?? "").contains(") Z ")
        }
        let (zombie, zombieText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(zombie == 7, "\(zombieText)")
        #expect(opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.isEmpty, "no image for a refused checkpoint")

        kill(program.pid, SIGUSR1)  // reaped: no children left
        try waitUntil("REAPED") { text().contains("REAPED") }
        let (alone, aloneText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(alone == 0, "\(aloneText)")
        program.send(SIGTERM)
        #expect(try program.wait() == .exited(0))
        #expect(text().contains("REAPED status 15") && text().contains("PASS"), "\(text())")
    }

    /// The case: a bash script waiting for a background job.
    @Test(.timeLimit(.minutes(2)), .enabled(if: access("/bin/bash", X_OK) == 0 && access("/bin/sleep", X_OK) == 0))
    func aShellWaitingForABackgroundJobIsRefused() throws {
        let scratch = Scratch()
        let output = scratch.file("out")
        let shell = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", "/bin/bash", "-c",
                                                       "/bin/sleep 60 & echo started; wait; echo waited $?"],
                                     outputPath: output)
        var job: pid_t = -1
        defer {
            if job > 0 { kill(job, SIGKILL) }  // bash's child: ours to end, by PID
            shell.killAndReap()
        }
        try waitUntil("started") { ((try? String(contentsOfFile: output)) ?? "").contains("started") }
        try waitUntil("the job is bash's child") {
            job = pid_t(((try? String(contentsOfFile: "/proc/\(shell.pid)/task/\(shell.pid)/children")) ?? "")
                .split(separator: " ").first ?? "") ?? -1
            return job > 0
        }
        let (code, text) = try Stasis.run(["checkpoint", String(shell.pid)], in: scratch.path)
        #expect(code == 7, "\(text)")
        #expect(text.contains("child processes (PID \(job)"), "\(text)")
        #expect(kill(shell.pid, 0) == 0, "bash keeps running")
    }
}
