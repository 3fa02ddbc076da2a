import Glibc
import Testing

/// Paths to the built products and helpers to drive `stasis` from tests.
enum Stasis {
    /// The build directory holding `stasis`: next to the test bundle, else PACKAGE/.build/debug.
    static let buildDirectory: String? = {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buffer, 4096)
        var candidates: [String] = []
        if n > 0 {
            var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            for _ in 0..<3 {
                path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
                candidates.append(path)
            }
        }
        candidates.append(packageRoot + "/.build/debug")
        return candidates.first { access($0 + "/stasis", X_OK) == 0 && access($0 + "/stasis-restorer", X_OK) == 0 }
    }()

    static let packageRoot: String = {
        let file = #filePath
        var path = file
        for _ in 0..<4 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
        return path
    }()

    static var launcher: String { (buildDirectory ?? ".") + "/stasis" }
    static var isBuilt: Bool { buildDirectory != nil }

    /// Runs `stasis ARGS` to completion; returns exit code and combined output.
    static func run(_ arguments: [String], in directory: String) throws -> (code: Int32, output: String) {
        let outputPath = directory + "/stasis-\(UInt32.random(in: 0...UInt32.max)).log"
        let child = try ChildProcess(launcher, arguments, outputPath: outputPath)
        let termination = try child.wait(seconds: 120)
        let output = (try? String(contentsOfFile: outputPath)) ?? ""
        unlink(outputPath)
        switch termination {
        case .exited(let code): return (code, output)
        case .signaled(let signal): return (128 + signal, output)
        }
    }
}

/// A fresh directory under /tmp, removed with its contents at deinit.
final class Scratch {
    let path: String
    init() {
        var template = Array("/tmp/stasis-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    deinit { if getenv("STASIS_TEST_KEEP_SCRATCH") == nil { system("rm -rf '\(path)'") } }
    func file(_ name: String) -> String { path + "/" + name }
}

extension String {
    init(contentsOfFile path: String) throws {
        guard let f = fopen(path, "r") else { throw TestFailure("cannot open \(path)") }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}

/// Waits until `condition` holds, polling; fails after `seconds`.
func waitUntil(_ what: String, seconds: Double = 30, _ condition: () -> Bool) throws {
    let deadline = monotonicNow() + seconds
    while !condition() {
        if monotonicNow() > deadline { throw TestFailure("timed out waiting for \(what)") }
        usleep(5000)
    }
}

/// Compiles a C fixture from Tests/Fixtures/NAME/main.c into `directory`.
func compileFixture(_ name: String, into directory: String) throws -> String {
    let source = Stasis.packageRoot + "/Tests/Fixtures/\(name)/main.c"
    let output = directory + "/" + name
    let status = system("cc -O1 -o '\(output)' '\(source)' 2>'\(directory)/cc.log'")
    guard status == 0 else { throw TestFailure("cc \(name) failed: \((try? String(contentsOfFile: directory + "/cc.log")) ?? "")") }
    return output
}

/// Starts `arguments` under `stasis run`, waits for READY in `output`, then does `cycles` rounds of
/// checkpoint → SIGKILL → restart (after a pause drawn from `delay` µs), calling `afterRestart` with the
/// cycle and the restored PID. Returns the last `stasis restart` child and the restored PID.
func checkpointRestartCycles(_ arguments: [String], scratch: Scratch, output: String, cycles: Int = 3,
                             runOptions: [String] = [], delay: ClosedRange<UInt32> = 50_000...50_000,
                             afterRestart: (Int, pid_t) throws -> Void = { _, _ in }) throws -> (ChildProcess, pid_t) {
    let original = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path] + runOptions + ["--"] + arguments,
                                    outputPath: output)
    try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
    var pid = original.pid
    var launcher: ChildProcess? = nil
    for cycle in 1...cycles {
        usleep(UInt32.random(in: delay))
        let (code, text) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
        try #require(code == 0, "cycle \(cycle): \(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        if let launcher {
            kill(pid, SIGKILL)  // `stasis restart` reaps it and exits: the PID is free again at once
            #expect(try launcher.wait() == .signaled(SIGKILL), "restart passes on the fatal signal")
        } else {
            original.killAndReap()
        }
        let pidFile = scratch.file("restored-\(cycle).pid")
        let log = scratch.file("restart-\(cycle).log")
        let next = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image], outputPath: log)
        do {
            try waitUntil("restored pid") { access(pidFile, R_OK) == 0 || ChildRegistry.shared.contains(next.pid) == false }
        } catch {
            throw TestFailure("cycle \(cycle): no restored pid within 30 s; restart log: \((try? String(contentsOfFile: log)) ?? "")")
        }
        guard access(pidFile, R_OK) == 0 else {
            throw TestFailure("cycle \(cycle): restart ended without restoring: \((try? String(contentsOfFile: log)) ?? "")")
        }
        pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        launcher = next
        try afterRestart(cycle, pid)
    }
    guard let launcher else { throw TestFailure("no cycles") }
    return (launcher, pid)
}
