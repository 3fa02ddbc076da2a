import Glibc
import Testing

/// Multithreaded runtimes: python3 with threading and a JVM (several Java threads, HotSpot's own
/// SIGUSR2 suspend/resume signal left to it). Each verifies itself on SIGTERM.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct RuntimeThreadTests {
    static let fixtures = Stasis.packageRoot + "/Tests/Fixtures"

    @Test func python3WithThreadsRestarts() throws {
        try ProgramRestartTests().roundTrip("python3", [Self.fixtures + "/python-threads/main.py"], Scratch())
    }

    @Test(.enabled(if: findInPath("javac") != nil && findInPath("java") != nil, "no JDK"))
    func javaWithThreadsRestarts() throws {
        let scratch = Scratch()
        let status = system("javac -d '\(scratch.path)' '\(Self.fixtures)/java-threads/Main.java' > '\(scratch.path)/javac.log' 2>&1")
        guard status == 0 else { throw TestFailure("javac: \((try? String(contentsOfFile: scratch.path + "/javac.log")) ?? "")") }
        // The JVM runs its shutdown hooks on SIGTERM, then exits with 128 + 15.
        try ProgramRestartTests().roundTrip("java", ["-Xmx64m", "-XX:+UseSerialGC", "-cp", scratch.path, "Main"], scratch,
                                            expectedExit: 143)
    }
}

func findInPath(_ name: String) -> String? {
    guard let path = getenv("PATH") else { return nil }
    for dir in String(cString: path).split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 { return "\(dir)/\(name)" }
    return nil
}
