import Glibc
import Testing

/// Multithreaded programs: every thread frozen in its handler, captured from inside, and brought back
/// with its registers, TLS, name, TID, mutexes and blocking calls; three checkpoint/restart cycles.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct ThreadTests {
    @Test(arguments: [(4, false), (64, false), (16, true)])
    func threadsSurviveThreeCheckpointRestartCycles(workers: Int, inPlace: Bool) throws {
        let scratch = Scratch()
        let binary = try compileFixture("threads", into: scratch.path)
        let output = scratch.file("threads.out")
        let original = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path] + (inPlace ? ["--no-fork"] : [])
                                        + ["--", binary, String(workers)], outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        var pid = original.pid
        var launcher: ChildProcess? = nil
        for cycle in 1...3 {
            usleep(UInt32.random(in: 20_000...200_000))
            let (code, text) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
            try #require(code == 0, "cycle \(cycle) checkpoint: \(text)")
            let image = text.split(separator: "\n").last.map(String.init) ?? ""
            if let launcher {
                kill(pid, SIGKILL)  // `stasis restart` reaps it and exits: the PID is free again at once
                #expect(try launcher.wait() == .signaled(SIGKILL), "restart passes on the fatal signal")
            } else {
                original.killAndReap()
            }
            let pidFile = scratch.file("restored-\(cycle).pid")
            let next = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image],
                                        outputPath: scratch.file("restart-\(cycle).log"))
            try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
            pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
            launcher = next
            #expect(taskCount(pid) == workers + 6, "cycle \(cycle): threads in /proc/\(pid)/task")
        }
        usleep(100_000)
        kill(pid, SIGTERM)
        #expect(try launcher?.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS threads \(workers + 6)") && !result.contains("FAIL"), "\(result)")
    }
}

func taskCount(_ pid: pid_t) -> Int {
    opendirNames("/proc/\(pid)/task").filter { $0 != "." && $0 != ".." }.count
}
