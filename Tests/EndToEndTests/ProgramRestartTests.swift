import Glibc
import Testing

/// Real runtimes, single-threaded: python3 (also through a wrapper script that execs the interpreter, such
/// as pyenv's shim, and Debian's non-PIE /usr/bin/python3, whose heap must keep growing after restart:
/// the brk trap) and a Swift program. Each verifies its own state on SIGTERM and prints PASS.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct ProgramRestartTests {
    /// run → READY → checkpoint → SIGKILL → restart → SIGTERM → expect PASS.
    func roundTrip(_ program: String, _ arguments: [String], _ scratch: Scratch, expectedExit: Int32 = 0) throws {
        let output = scratch.file("program.out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", program] + arguments,
                                     outputPath: output, workingDirectory: scratch.path)
        try waitUntil("READY from \(program)", seconds: 60) {
            ((try? String(contentsOfFile: output)) ?? "").contains("READY")
        }
        usleep(100_000)
        let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        #expect(code == 0, "checkpoint: \(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        child.killAndReap()

        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image],
                                       outputPath: scratch.file("restart.log"), workingDirectory: scratch.path)
        try waitUntil("restored pid", seconds: 60) { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        usleep(200_000)
        kill(pid, SIGTERM)
        let termination = try restart.wait(seconds: 60)
        let result = try String(contentsOfFile: output)
        #expect(termination == .exited(expectedExit), "restart log: \((try? String(contentsOfFile: scratch.file("restart.log"))) ?? "")")
        #expect(result.contains("PASS") && !result.contains("FAIL"), "output: \(result)")
    }

    static let script = Stasis.packageRoot + "/Tests/Fixtures/python-state/main.py"

    @Test func python3FromPATHRestarts() throws {
        try roundTrip("python3", [Self.script], Scratch())
    }

    @Test(.enabled(if: access("/usr/bin/python3", X_OK) == 0, "no /usr/bin/python3"))
    func debianNonPIEPythonKeepsGrowingItsHeapAfterRestart() throws {
        try roundTrip("/usr/bin/python3", [Self.script], Scratch())
    }

    @Test func swiftProgramRestarts() throws {
        let scratch = Scratch()
        let binary = scratch.file("swift-state")
        let source = Stasis.packageRoot + "/Tests/Fixtures/swift-state/main.swift"
        let status = system("swiftc -O -o '\(binary)' '\(source)' > '\(scratch.path)/swiftc.log' 2>&1")
        guard status == 0 else {
            throw TestFailure("swiftc failed: \((try? String(contentsOfFile: scratch.path + "/swiftc.log")) ?? "")")
        }
        try roundTrip(binary, [], scratch)
    }
}
