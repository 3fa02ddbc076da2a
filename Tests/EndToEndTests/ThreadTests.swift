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
        let (launcher, pid) = try checkpointRestartCycles(
            [binary, String(workers)], scratch: scratch, output: output, runOptions: inPlace ? ["--no-fork"] : [],
            delay: 20_000...200_000
        ) { cycle, pid in
            #expect(taskCount(pid) == workers + 6, "cycle \(cycle): threads in /proc/\(pid)/task")
        }
        usleep(100_000)
        kill(pid, SIGTERM)
        #expect(try launcher.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS threads \(workers + 6)") && !result.contains("FAIL"), "\(result)")
    }
}

func taskCount(_ pid: pid_t) -> Int {
    opendirNames("/proc/\(pid)/task").filter { $0 != "." && $0 != ".." }.count
}
