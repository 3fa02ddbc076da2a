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
        let termination = try launcher.wait()
        let result = try String(contentsOfFile: output)
        // With pid_max 32768 and a test suite spawning processes in parallel, another process can take
        // one of the program's old thread ids between the kill and the restart. The restorer then says
        // so and gives that thread a new id; mutexes held across the checkpoint keep the old owner id
        // (README, known limits), which this fixture notices. That is the environment, not a bug.
        // A taken PID is no such case: the program then comes back in a PID namespace with every id it
        // had (PIDNamespaceTests); only if no namespace can be had are its thread ids patched.
        let logs = (1...3).map { (try? String(contentsOfFile: scratch.file("restart-\($0).log"))) ?? "" }.joined()
        let tidsTaken = logs.contains("could not restore thread ids") || logs.contains("thread ids are patched")
        withKnownIssue("an old thread id was taken by another process: \(logs)", isIntermittent: true) {
            #expect(termination == .exited(0))
            #expect(result.contains("PASS threads \(workers + 6)") && !result.contains("FAIL"), "\(result)")
        } when: {
            tidsTaken
        }
    }
}

func taskCount(_ pid: pid_t) -> Int {
    opendirNames("/proc/\(pid)/task").filter { $0 != "." && $0 != ".." }.count
}
