import Glibc
import Testing

/// A program on a terminal continues on the terminal `stasis restart` runs on, with the modes it set.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct TerminalTests {
    /// A pseudo-terminal pair: the master stays with the test, the slave's path goes to the child.
    final class PseudoTerminal {
        let master: Int32
        let slavePath: String
        init() throws {
            master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
            var number: UInt32 = 0
            var unlock: Int32 = 0
            guard master >= 0, ioctl(master, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0,
                ioctl(master, 0x8004_5430 /* TIOCGPTN */, &number) == 0
            else { throw TestFailure("cannot open a pseudo-terminal") }
            slavePath = "/dev/pts/\(number)"
        }
        deinit { close(master) }
    }

    @Test func rawModeFollowsTheProgramToTheNewTerminal() throws {
        let scratch = Scratch()
        let binary = try compileFixture("raw-terminal", into: scratch.path)
        let output = scratch.file("out")
        let first = try PseudoTerminal()
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output,
                                       inputPath: first.slavePath)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        program.killAndReap()

        let second = try PseudoTerminal()
        // The new terminal starts in the default (cooked, echoing) mode.
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image],
                                       outputPath: scratch.file("restart.log"), inputPath: second.slavePath)
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS"), "\(result) \((try? String(contentsOfFile: scratch.file("restart.log"))) ?? "")")
    }

    @Test func aPseudoTerminalPairTheProgramOwnsIsRecreated() throws {
        let scratch = Scratch()
        let binary = try compileFixture("pty-pair", into: scratch.path)
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect((try String(contentsOfFile: output)).contains("PASS"), "\((try? String(contentsOfFile: output)) ?? "")")
    }
}
