import Glibc
import Testing

/// A thread checkpointed inside a blocking system call resumes that call after restart.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SystemCallTests {
    @Test func readInterruptedByTheCheckpointContinuesAfterRestart() throws {
        let scratch = Scratch()
        let binary = try compileFixture("blocked-read", into: scratch.path)
        let before = scratch.file("stdin-before"), after = scratch.file("stdin-after")
        mkfifo(before, 0o600)
        mkfifo(after, 0o600)
        let output = scratch.file("out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output,
                                     inputPath: before)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        usleep(100_000)  // now blocked in read(0)
        let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        #expect(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        child.killAndReap()

        let restart = try ChildProcess(Stasis.launcher, ["restart", image], outputPath: scratch.file("restart.log"),
                                       inputPath: after)
        usleep(300_000)
        let writer = open(after, O_WRONLY)
        _ = write(writer, "hello\n", 6)
        close(writer)
        #expect(try restart.wait(seconds: 30) == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("GOT hello") && result.contains("PASS"), "\(result)")
    }
}

/// A sleep interrupted by the checkpoint signal is resumed with its remaining time, in the running
/// program and in the restored one, instead of returning EINTR (CRIU and DMTCP return EINTR).
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SleepTests {
    @Test func sleepsSurviveACheckpointAndARestart() throws {
        let scratch = Scratch()
        let binary = try compileFixture("sleeper", into: scratch.path)
        // Live: checkpoint in the middle of both sleeps; the program must finish without EINTR.
        let liveOutput = scratch.file("live.out")
        let live = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: liveOutput)
        try waitUntil("READY") { ((try? String(contentsOfFile: liveOutput)) ?? "").contains("READY") }
        usleep(300_000)
        #expect(try Stasis.run(["checkpoint", String(live.pid)], in: scratch.path).code == 0)
        usleep(1_700_000)
        #expect(try Stasis.run(["checkpoint", String(live.pid)], in: scratch.path).code == 0)
        #expect(try live.wait() == .exited(0))
        #expect((try String(contentsOfFile: liveOutput)).contains("PASS"))

        // Restored: checkpoint mid-sleep, kill, restart: the rest of the sleep, then PASS.
        let output = scratch.file("restored.out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        usleep(300_000)
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        try #require(code == 0, "\(text)")
        program.killAndReap()
        let restart = try ChildProcess(Stasis.launcher, ["restart", text.split(separator: "\n").last.map(String.init) ?? ""],
                                       outputPath: scratch.file("restart.log"))
        #expect(try restart.wait(seconds: 30) == .exited(0))
        #expect((try String(contentsOfFile: output)).contains("PASS"), "\((try? String(contentsOfFile: output)) ?? "")")
    }
}

/// POSIX timers come back with their ids, notification and remaining time.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct PosixTimerTests {
    @Test func timersKeepTheirIdsAndDeadlines() throws {
        let scratch = Scratch()
        let binary = try compileFixture("posix-timers", into: scratch.path)
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output)
        usleep(100_000)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect((try String(contentsOfFile: output)).contains("PASS"), "\((try? String(contentsOfFile: output)) ?? "")")
    }
}
