import Glibc
import Testing

/// A private single-node Slurm started by Tests/Slurm/cluster.sh in a directory of its own (config,
/// state, logs, munge key and socket; never the system's). `stop()` cancels its jobs and ends every
/// process it started; call it in a `defer` (deinit does it too, as a fallback).
final class SlurmCluster {
    static let script = Stasis.packageRoot + "/Tests/Slurm/cluster.sh"

    /// Why Slurm tests cannot run here, or nil: Slurm not installed, not root, or daemons that do not
    /// start. Found once, by starting and stopping a cluster; printed when not nil.
    static let unavailableReason: String? = {
        let check = try? runTool("/bin/bash", [script, "check"])
        guard let check, check.code == 0 else {
            let reason = check?.output ?? "cannot run \(script)"
            print("SlurmTests skipped: \(reason)")
            return reason
        }
        do {
            let cluster = try SlurmCluster()
            cluster.stop()
            return nil
        } catch {
            print("SlurmTests skipped: the Slurm daemons would not start: \(error)")
            return "daemons would not start: \(error)"
        }
    }()
    static var isAvailable: Bool { unavailableReason == nil }

    let directory: String
    private var isStopped = false
    var conf: String { directory + "/slurm.conf" }
    /// For every Slurm command; jobs inherit it (sbatch exports the submitter's environment), which
    /// marks them as this cluster's for `cluster.sh stop`.
    var environment: [String] { ["SLURM_CONF=\(conf)", "STASIS_SLURM_CLUSTER=\(directory)"] }

    init() throws {
        var template = Array("/tmp/stasis-slurm-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        let (code, output) = try runTool("/bin/bash", [Self.script, "start", directory])
        guard code == 0 else {
            isStopped = true
            system("rm -rf '\(directory)'")
            throw TestFailure("cluster.sh start failed (\(code)): \(output)")
        }
    }

    func stop() {
        guard !isStopped else { return }
        isStopped = true
        do {
            let (code, output) = try runTool("/bin/bash", [Self.script, "stop", directory])
            if code != 0 { print("cluster.sh stop: \(output)") }
        } catch {
            print("cluster.sh stop: \(error)")
        }
        if getenv("STASIS_TEST_KEEP_SCRATCH") == nil { system("rm -rf '\(directory)'") }
    }

    deinit { stop() }

    /// Runs a Slurm command (sbatch, scontrol, scancel...) against this cluster.
    @discardableResult
    func run(_ tool: String, _ arguments: [String]) throws -> (code: Int32, output: String) {
        try runTool(Self.toolPath(tool), arguments, environment: environment)
    }

    /// Like `run`, but fails unless the command exits 0.
    @discardableResult
    func require(_ tool: String, _ arguments: [String]) throws -> String {
        let (code, output) = try run(tool, arguments)
        guard code == 0 else { throw TestFailure("\(tool) \(arguments.joined(separator: " ")) exited \(code): \(output)") }
        return output
    }

    /// `sbatch --parsable OPTIONS SCRIPT` from `workingDirectory`; returns the job id.
    func submit(_ script: String, options: [String] = [], workingDirectory: String) throws -> Int {
        let output = try require("sbatch", ["--parsable", "--chdir=\(workingDirectory)"] + options + [script])
        guard let id = Int(output.split(separator: "\n").last.map { String($0).split(separator: ";")[0] } ?? "") else {
            throw TestFailure("sbatch printed no job id: \(output)")
        }
        return id
    }

    /// The fields of `scontrol show job -o ID` (JobState, Reason, Restarts, StartTime, EndTime...).
    func job(_ id: Int) throws -> [String: String] {
        let output = try require("scontrol", ["show", "job", "-o", String(id)])
        var fields: [String: String] = [:]
        for word in output.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            guard let equals = word.firstIndex(of: "=") else { continue }
            fields[String(word[..<equals])] = String(word[word.index(after: equals)...])
        }
        return fields
    }

    private static func toolPath(_ tool: String) -> String {
        for directory in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] where access(directory + "/" + tool, X_OK) == 0 {
            return directory + "/" + tool
        }
        return tool
    }
}

/// Follows jobs by polling `scontrol show job`, and records each change of a job's state, reason or
/// restart count with the seconds since the watch began: the Slurm side of a scenario's log.
final class SlurmJobWatch {
    let cluster: SlurmCluster
    private let start = monotonicNow()
    private var followed: [Int] = []
    private var last: [Int: String] = [:]
    private(set) var transitions: [String] = []
    /// Each followed job's fields as of the last poll.
    private(set) var jobs: [Int: [String: String]] = [:]

    init(_ cluster: SlurmCluster) { self.cluster = cluster }

    /// Adds a job to those every poll reads.
    func follow(_ id: Int) {
        if !followed.contains(id) { followed.append(id) }
    }

    /// Reads every followed job once.
    func poll() throws {
        for id in followed {
            let fields = try cluster.job(id)
            jobs[id] = fields
            let summary = "\(fields["JobState"] ?? "?") reason=\(fields["Reason"] ?? "?") restarts=\(fields["Restarts"] ?? "?")"
            if last[id] != summary {
                last[id] = summary
                let tenths = Int(((monotonicNow() - start) * 10).rounded())
                transitions.append("+\(tenths / 10).\(tenths % 10)s job \(id) \(summary)")
            }
        }
    }

    /// Polls every 0.2 s until `condition` holds; fails after `seconds`.
    func wait(for what: String, seconds: Double = 60, until condition: () throws -> Bool) throws {
        let deadline = monotonicNow() + seconds
        while true {
            try poll()
            if try condition() { return }
            if monotonicNow() > deadline { throw TestFailure("timed out after \(Int(seconds)) s waiting for \(what)") }
            usleep(200_000)
        }
    }

    /// Follows job `id` and waits until it is in `state` (COMPLETED, PENDING...); fails at once if it
    /// ends in another state. Returns its fields.
    @discardableResult
    func wait(job id: Int, state: String, seconds: Double = 90) throws -> [String: String] {
        let ended: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"]
        follow(id)
        try wait(for: "job \(id) \(state)", seconds: seconds) {
            let current = jobs[id]?["JobState"] ?? ""
            if current != state && ended.contains(current) {
                throw TestFailure("job \(id) ended \(current) instead of \(state) (\(jobs[id]?["ExitCode"] ?? "?"))")
            }
            return current == state
        }
        return jobs[id] ?? [:]
    }
}

/// Runs a program to completion with `environment` added; returns its exit code and output (stdout and
/// stderr together).
func runTool(_ path: String, _ arguments: [String], environment: [String] = [], seconds: Double = 120) throws
    -> (code: Int32, output: String)
{
    var template = Array("/tmp/stasis-tool-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw TestFailure("mkstemp: \(String(cString: strerror(errno)))") }
    close(fd)
    let outputPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    defer { unlink(outputPath) }
    let child = try ChildProcess(path, arguments, environment: environment, outputPath: outputPath)
    let termination = try child.wait(seconds: seconds)
    let output = (try? String(contentsOfFile: outputPath)) ?? ""  // a missing file is an empty output
    switch termination {
    case .exited(let code): return (code, output)
    case .signaled(let signal): return (128 + signal, output)
    }
}

/// The lines of a job's output worth quoting: everything but progress lines ("…: step i/N"), with the
/// progress line just before and just after each of them, so that a resume shows where it went on.
func notableLines(_ text: String, progressMarker: String = ": step ") -> [String] {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    var keep = Set<Int>()
    for (index, line) in lines.enumerated() where !line.contains(progressMarker) && !line.isEmpty {
        keep.insert(index)
        if index > 0 { keep.insert(index - 1) }
        if index + 1 < lines.count { keep.insert(index + 1) }
    }
    return keep.sorted().map { lines[$0] }.filter { !$0.isEmpty }
}
