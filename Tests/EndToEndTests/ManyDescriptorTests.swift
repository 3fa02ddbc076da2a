import Glibc
import Testing

/// Thousands of descriptors (Tests/Fixtures/many-fds): independent opens of one file stay independent,
/// dup()s stay one open file description, and restart fits in about as many descriptor numbers as the
/// program had (it used to need twice as many).
@Suite(.serialized, .enabled(if: Stasis.isBuilt && hardDescriptorLimit() >= 8192, "run `swift build` first; needs ulimit -Hn 8192"))
struct ManyDescriptorTests {

    /// 5,000 opens of /dev/null and 2,000 dups of a file at an offset, interleaved, a hundred opens of
    /// that file at their own offsets, dup'ed pipe ends. `stasis restart` starts with a soft limit of
    /// 1024, below the program's count: it raises its own to the hard one.
    @Test func thousandsOfDescriptorsKeepTheirOpenFileDescriptions() throws {
        let scratch = Scratch()
        let (restart, output) = try checkpointAndRestart(scratch, nulls: 5000, dups: 2000, programSoft: 0, launcherLimits: "ulimit -Sn 1024")
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS") && !result.contains("FAIL"), "\(result)")
    }

    /// About 3,000 descriptors under a limit of 4,096, soft and hard, for the program and for restart: no
    /// room for two copies of each. Under a hard limit of 2,048 restart refuses with exit code 14.
    @Test func descriptorsAboveHalfTheLimitRestart() throws {
        let scratch = Scratch()
        let (restart, output) = try checkpointAndRestart(scratch, nulls: 2000, dups: 900, programSoft: 4096,
                                                         launcherLimits: "ulimit -n 4096", refusedUnder: "ulimit -n 2048")
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS") && !result.contains("FAIL"), "\(result)")
    }

    /// 4,200 pipes, each holding a few bytes the program has not read: the agent used to remember only
    /// 4,096 pipes' readers, and the bytes of the others were lost.
    @Test(.enabled(if: hardDescriptorLimit() >= 16384, "needs ulimit -Hn 16384"))
    func thousandsOfPipesKeepTheirBytes() throws {
        let scratch = Scratch()
        let (restart, output) = try checkpointAndRestart(scratch, nulls: 100, dups: 50, programSoft: 0, pipes: 4200,
                                                         launcherLimits: "true")
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS") && !result.contains("FAIL"), "\(result)")
    }

    /// Runs the fixture, checkpoints it, kills it, restarts it under `launcherLimits` (a shell's ulimit
    /// command), and sends SIGTERM to the restored program. Returns `stasis restart` and the output file.
    /// `refusedUnder`: first a restart that must be refused (exit 14) under those limits.
    private func checkpointAndRestart(_ scratch: Scratch, nulls: Int, dups: Int, programSoft: Int, pipes: Int = 4,
                                      launcherLimits: String, refusedUnder: String? = nil) throws -> (ChildProcess, String) {
        let binary = try compileFixture("many-fds", into: scratch.path)
        let output = scratch.file("out")
        let original = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, scratch.path,
                                                          String(nulls), String(dups), String(programSoft), String(pipes)],
                                        outputPath: output)
        try waitUntil("READY", seconds: 60) { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(original.pid)], in: scratch.path)
        try #require(code == 0, "checkpoint: \(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        original.killAndReap()
        if let refusedUnder {
            let log = scratch.file("refused.log")
            let refused = try ChildProcess("/bin/sh", ["-c", refusedUnder + " && exec \"$@\"", "sh", Stasis.launcher, "restart", image],
                                           outputPath: log)
            let termination = try refused.wait()
            let message = (try? String(contentsOfFile: log)) ?? ""
            #expect(termination == .exited(14), "\(message)")
            #expect(message.contains("hard limit"), "\(message)")
        }
        let pidFile = scratch.file("restored.pid"), log = scratch.file("restart.log")
        let restart = try ChildProcess("/bin/sh", ["-c", launcherLimits + " && exec \"$@\"", "sh", Stasis.launcher, "restart",
                                                   "--pid-file", pidFile, image], outputPath: log)
        try waitUntil("restored pid", seconds: 60) { access(pidFile, R_OK) == 0 || !ChildRegistry.shared.contains(restart.pid) }
        let restored = pid_t(((try? String(contentsOfFile: pidFile)) ?? "").trimmingCharacters(in: "\n")) ?? -1
        guard restored > 0 else {
            restart.killAndReap()
            throw TestFailure("restart: \((try? String(contentsOfFile: log)) ?? "")")
        }
        kill(restored, SIGTERM)
        return (restart, output)
    }
}

/// The hard RLIMIT_NOFILE of the test process.
func hardDescriptorLimit() -> Int {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    return limit.rlim_max > rlim_t(Int.max) ? Int.max : Int(limit.rlim_max)
}

/// The spawn child's parallel move (stasis_spawn_install) on its own: cycles, a source read twice,
/// a move onto its own source, chains (Tests/Fixtures/fd-moves, which compiles spawn.c in: clang,
/// for the headers' nullability annotations).
@Suite(.enabled(if: findInPath("clang") != nil, "no clang"))
struct DescriptorMoveTests {
    @Test func sourcesThatAreOtherMovesTargetsEndUpInPlace() throws {
        let scratch = Scratch()
        let root = Stasis.packageRoot
        let binary = scratch.file("fd-moves"), log = scratch.file("cc.log")
        let status = system("clang -O1 -I'\(root)/Sources/CStasisSpawn/include' -I'\(root)/Sources/CStasisABI/include' -o '\(binary)' '\(root)/Tests/Fixtures/fd-moves/main.c' > '\(log)' 2>&1")
        try #require(status == 0, "clang: \((try? String(contentsOfFile: log)) ?? "")")
        let output = scratch.file("out")
        let child = try ChildProcess(binary, [], outputPath: output)
        #expect(try child.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS"), "\(result)")
    }
}
