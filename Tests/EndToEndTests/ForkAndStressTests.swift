import Glibc
import Testing

@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct ForkAndStressTests {
    /// A forked child carries the agent: it keeps working and can itself be checkpointed and restarted.
    @Test func forkedChildCanBeCheckpointedAndRestarted() throws {
        let scratch = Scratch()
        let binary = try compileFixture("fork-child", into: scratch.path)
        let output = scratch.file("out")
        let childPIDFile = scratch.file("child.pid")
        let parent = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, childPIDFile],
                                      outputPath: output)
        defer { parent.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let child = pid_t((try String(contentsOfFile: childPIDFile)).trimmingCharacters(in: "\n")) ?? -1
        let (code, text) = try Stasis.run(["checkpoint", String(child)], in: scratch.path)
        #expect(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        // The parent is still fine after its child's checkpoint; SIGTERM makes both finish.
        kill(parent.pid, SIGTERM)
        #expect(try parent.wait() == .exited(0))
        // The child's image restarts on its own.
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let restored = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        kill(restored, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS parent"), "\(result)")
        #expect(result.components(separatedBy: "PASS child").count == 3, "child passes before and after restart: \(result)")
    }

    /// 100 checkpoints in a row of a 16-thread program under load: no hang, no crash, and it verifies itself.
    @Test func hundredCheckpointsOfABusySixteenThreadProgram() throws {
        let scratch = Scratch()
        let binary = try compileFixture("threads", into: scratch.path)
        let output = scratch.file("out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, "10"], outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        for i in 1...100 {
            let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
            try #require(code == 0, "checkpoint \(i): \(text)")
            let image = text.split(separator: "\n").last.map(String.init) ?? ""
            unlink(image)  // keep the disk use flat
        }
        kill(program.pid, SIGTERM)
        #expect(try program.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS threads 16"), "\(result)")
    }
}

extension String {
    func components(separatedBy separator: String) -> [Substring] {
        var parts: [Substring] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}
