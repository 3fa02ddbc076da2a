import Glibc
import Testing

/// Lazy restart: the program runs while a pager brings its pages in. The lazy fixture uses its memory
/// every way that must keep working meanwhile (system calls on pages not yet there, MADV_DONTNEED,
/// mremap, munmap, fork) and checks every page; STASIS_PAGER_DELAY_MS holds the pager's background
/// paging back so that all of that happens before the pages are there.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct LazyRestartTests {
    static let pages = "65536"  // 256 MiB, every page stored

    /// With `checkpointFirst`, no exercise: a checkpoint right after the restart, while the pager is
    /// held back, must wait for it (an image taken earlier would lack the pages not yet there); that
    /// image, restarted eagerly, must hold every page.
    func run(restartOptions: [String], expectLazy: Bool, checkpointFirst: Bool = false) throws {
        let scratch = Scratch()
        let binary = try compileFixture("lazy", into: scratch.path)
        let output = scratch.file("lazy.out")
        let original = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, Self.pages],
                                        outputPath: output, workingDirectory: scratch.path)
        try waitUntil("READY from the fixture") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(original.pid)], in: scratch.path)
        try #require(code == 0, "checkpoint: \(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        original.killAndReap()

        let pidFile = scratch.file("restored.pid")
        let log = scratch.file("restart.log")
        let launcher = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile] + restartOptions + [image],
                                        environment: ["STASIS_PAGER_DELAY_MS=3000"], outputPath: log,
                                        workingDirectory: scratch.path)
        try waitUntil("the restored PID", seconds: 60) {
            access(pidFile, R_OK) == 0 || ChildRegistry.shared.contains(launcher.pid) == false
        }
        guard let pid = pid_t(((try? String(contentsOfFile: pidFile)) ?? "").trimmingCharacters(in: "\n")) else {
            throw TestFailure("restart wrote no pid: \((try? String(contentsOfFile: log)) ?? "")")
        }
        if checkpointFirst {
            let (checkpointCode, checkpointText) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
            try #require(checkpointCode == 0, "checkpoint during paging: \(checkpointText)")
            let second = checkpointText.split(separator: "\n").last.map(String.init) ?? ""
            kill(pid, SIGKILL)
            #expect(try launcher.wait() == .signaled(SIGKILL))
            let secondPIDFile = scratch.file("restored-2.pid")
            let secondLauncher = try ChildProcess(Stasis.launcher, ["restart", "--eager", "--pid-file", secondPIDFile, second],
                                                  outputPath: scratch.file("restart-2.log"), workingDirectory: scratch.path)
            try waitUntil("the second restored PID", seconds: 60) {
                access(secondPIDFile, R_OK) == 0 || ChildRegistry.shared.contains(secondLauncher.pid) == false
            }
            let secondPID = pid_t(((try? String(contentsOfFile: secondPIDFile)) ?? "").trimmingCharacters(in: "\n")) ?? -1
            kill(secondPID, SIGTERM)
            let termination = try secondLauncher.wait()
            let result = try String(contentsOfFile: output)
            #expect(termination == .exited(0), "fixture: \(result.suffix(300))")
            #expect(result.hasSuffix("PASS\n"), "\(result.suffix(300))")
            return
        }
        kill(pid, SIGUSR1)
        try waitUntil("the fixture's checks while paging in") {
            ((try? String(contentsOfFile: output)) ?? "").contains("LAZYCHECK")
        }
        kill(pid, SIGTERM)
        let termination = try launcher.wait()
        let result = try String(contentsOfFile: output)
        #expect(termination == .exited(0), "fixture: \(result.suffix(300)) restart: \((try? String(contentsOfFile: log)) ?? "")")
        #expect(result.contains("LAZYCHECK PASS"), "\(result.suffix(300))")
        #expect(result.contains("LAZY \(expectLazy ? 1 : 0)"), "lazily registered memory expected: \(expectLazy); \(result.suffix(300))")
        #expect(result.hasSuffix("PASS\n"), "\(result.suffix(300))")
    }

    @Test func checkpointWhilePagingInWaitsForThePager() throws {
        try run(restartOptions: [], expectLazy: true, checkpointFirst: true)
    }

    @Test func memoryWorksWhilePagesAreStillComingIn() throws {
        try run(restartOptions: [], expectLazy: true)
    }

    @Test func eagerRestartHasEveryPageBeforeTheProgramRuns() throws {
        try run(restartOptions: ["--eager"], expectLazy: false)
    }
}
