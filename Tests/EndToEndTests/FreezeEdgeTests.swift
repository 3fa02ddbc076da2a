import Glibc
import Testing

@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct FreezeEdgeTests {
    /// Checkpoints while threads are being created and joined nonstop: no hang, no lost or phantom
    /// thread, and the last image restarts and finishes its own verification.
    @Test func checkpointsDuringThreadCreationAndExit() throws {
        let scratch = Scratch()
        let binary = try compileFixture("thread-churn", into: scratch.path)
        let output = scratch.file("out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        var image = ""
        for i in 1...30 {
            let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
            try #require(code == 0, "checkpoint \(i): \(text)")
            if !image.isEmpty { unlink(image) }
            image = text.split(separator: "\n").last.map(String.init) ?? ""
        }
        program.killAndReap()
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        usleep(200_000)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS") && !result.contains("FAIL"), "\(result)")
    }

    /// A thread that cannot be frozen makes the checkpoint fail within the bound; every other thread
    /// is thawed and the program carries on.
    @Test func unfreezableThreadFailsTheCheckpointAndTheProgramGoesOn() throws {
        let scratch = Scratch()
        let binary = try compileFixture("stubborn-thread", into: scratch.path)
        let output = scratch.file("out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(code == 7, "\(text)")
        #expect(text.contains("did not stop"), "\(text)")
        #expect(opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") || $0.hasSuffix(".tmp") }.isEmpty)
        kill(program.pid, SIGTERM)
        #expect(try program.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS"), "\(result)")
    }
}
