import Glibc
import Testing

/// Lazy restart: the program runs while a pager brings its pages in. The lazy fixture uses its memory
/// every way that must keep working meanwhile (system calls on pages not yet there, MADV_DONTNEED,
/// mremap, munmap, fork) and checks every page; STASIS_PAGER_DELAY_MS holds the pager's background
/// paging back so that all of that happens before the pages are there.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct LazyRestartTests {
    static let pages = "65536"  // 256 MiB, every page stored

    func run(restartOptions: [String], expectLazy: Bool) throws {
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

    @Test func memoryWorksWhilePagesAreStillComingIn() throws {
        try run(restartOptions: [], expectLazy: true)
    }

    @Test func eagerRestartHasEveryPageBeforeTheProgramRuns() throws {
        try run(restartOptions: ["--eager"], expectLazy: false)
    }
}
