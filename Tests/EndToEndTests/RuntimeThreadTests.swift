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

/// Kernel objects a program holds: pipes with buffered bytes, a thread blocked on an empty pipe,
/// eventfd (semaphore, nonblocking), epoll registrations, timerfd, a directory fd at 1000; three cycles.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct DescriptorTests {
    @Test func descriptorsSurviveThreeCycles() throws {
        let scratch = Scratch()
        let binary = try compileFixture("descriptors", into: scratch.path)
        try "probe".write(toFile: scratch.file("probe.txt"))
        let output = scratch.file("out")
        let (launcher, pid) = try checkpointRestartCycles([binary, scratch.path], scratch: scratch, output: output)
        kill(pid, SIGTERM)
        #expect(try launcher.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS") && !result.contains("FAIL"), "\(result)")
    }
}

/// Swift's own runtime: a Dispatch timer (timerfd and epoll inside libdispatch) and async/await tasks.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SwiftConcurrencyTests {
    @Test func dispatchAndAsyncAwaitRestart() throws {
        let scratch = Scratch()
        let binary = scratch.file("swift-concurrency")
        let source = Stasis.packageRoot + "/Tests/Fixtures/swift-concurrency/main.swift"
        guard system("swiftc -O -o '\(binary)' '\(source)' > '\(scratch.path)/swiftc.log' 2>&1") == 0 else {
            throw TestFailure("swiftc: \((try? String(contentsOfFile: scratch.path + "/swiftc.log")) ?? "")")
        }
        try ProgramRestartTests().roundTrip(binary, [], scratch)
    }
}

/// Sockets: a listening TCP socket is re-created on its port; a connection comes back reset.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SocketTests {
    @Test func listenerIsRecreatedAndConnectionsComeBackReset() throws {
        let scratch = Scratch()
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles(["python3", Stasis.packageRoot + "/Tests/Fixtures/python-server/main.py"],
                                                         scratch: scratch, output: output)
        let text = try String(contentsOfFile: output)
        let port = UInt16(text.split(separator: "\n").first { $0.hasPrefix("READY") }?.split(separator: " ").last ?? "") ?? 0
        // A new client, queued on the restored listener.
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0, "connect to the restored listener on port \(port): \(String(cString: strerror(errno)))")
        _ = write(client, "ping", 4)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS"), "\(result)")
    }
}
