import Glibc
import Testing

/// fork() does not copy MAP_SHARED pages, so a copy-on-write writer reading shared memory while the
/// program runs again would store pages from different moments. The writer copies shared memory before
/// the program thaws: the shared-writer fixture, which rewrites 64 MiB of shared memory without pause,
/// finds exactly one instant's state after each restart.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SharedMemorySnapshotTests {
    @Test(.timeLimit(.minutes(3))) func sharedMemoryIsStoredAsOfTheFreeze() throws {
        let scratch = Scratch()
        let binary = try compileFixture("shared-writer", into: scratch.path)
        let output = scratch.file("out")
        let (launcher, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output, cycles: 3,
                                                          delay: 20_000...200_000)
        defer { launcher.killAndReap() }
        usleep(100_000)
        kill(pid, SIGTERM)
        let status = try launcher.wait()
        let text = (try? String(contentsOfFile: output)) ?? ""
        #expect(status == .exited(0), "\(text)")
        #expect(text.contains("PASS") && !text.contains("TORN") && !text.contains("FAIL"), "\(text)")
    }
}
