import Glibc
import Testing

/// A program that installs its own handler for the trigger signal and blocks it keeps both, while
/// `stasis checkpoint` (a sigqueue'd request) still checkpoints it.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SignalOwnershipTests {
    @Test func programKeepsItsOwnSIGUSR2AndCheckpointsStillWork() throws {
        let scratch = Scratch()
        let binary = try compileFixture("own-usr2", into: scratch.path)
        let output = scratch.file("out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        #expect((try String(contentsOfFile: output)).contains("usr2 1"))
        child.send(SIGUSR2)  // the program's, not a checkpoint
        try waitUntil("usr2 2") { ((try? String(contentsOfFile: output)) ?? "").contains("usr2 2") }
        #expect(opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.isEmpty)

        let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        #expect(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        child.killAndReap()

        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        kill(pid, SIGUSR2)
        try waitUntil("usr2 3 after restart") { ((try? String(contentsOfFile: output)) ?? "").contains("usr2 3") }
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS usr2 3"), "\(result)")
    }
}
