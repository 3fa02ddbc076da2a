import Glibc
import Testing

/// One `stasis job` scenario under Slurm: a scratch directory with the `simulate` fixture, its
/// input.dat, the job script and the checkpoint directory; a private cluster (started last, so that
/// its 30 s time-limit clock starts with the scenario); a watch on the jobs. `finish()` (in a
/// `defer`) prints the scenario's log and stops the cluster.
final class SlurmJobScenario {
    let name: String
    let scratch = Scratch()
    let cluster: SlurmCluster
    let watch: SlurmJobWatch
    let steps: Int
    private var notes: [String] = []
    var checkpointDirectory: String { scratch.file("ckpt") }
    var outputPath: String { scratch.file("job.out") }
    /// The job's output file (stdout and stderr of every run, appended).
    var output: String { fileText(outputPath) }

    /// `steps` steps of `stepMilliseconds` each; the program exits `exitStatus` once verified.
    init(steps: Int, stepMilliseconds: Int = 50, exitStatus: Int = 0, name: String = #function) throws {
        self.name = name
        self.steps = steps
        _ = try compileFixture("simulate", into: scratch.path)
        let values = (0..<steps).map { ($0 * 7919 + 17) % 10007 - 300 }
        let input = "simulate steps=\(steps) step_ms=\(stepMilliseconds) total=\(values.reduce(0, +)) exit=\(exitStatus)\n"
            + values.map { "\($0)\n" }.joined()
        try writeFile(scratch.file("input.dat"), input, mode: 0o644)
        try writeFile(scratch.file("job.sh"), """
            #!/bin/bash
            #SBATCH --requeue --open-mode=append --signal=B:USR1@120
            echo "job: run SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-unset}"
            exec '\(Stasis.launcher)' job --dir '\(scratch.file("ckpt"))' --checkpoint-on USR1 --requeue -- ./simulate input.dat

            """)
        cluster = try SlurmCluster()
        watch = SlurmJobWatch(cluster)
    }

    /// Submits job.sh (output appended to job.out, options after the script's own) and follows it.
    func submit(options: [String] = []) throws -> Int {
        let job = try cluster.submit(scratch.file("job.sh"), options: ["-o", outputPath] + options, workingDirectory: scratch.path)
        watch.follow(job)
        return job
    }

    /// Waits until the program has printed step `step` (in any run); fails if the job ends first.
    func waitForStep(_ step: Int, job: Int, seconds: Double = 60) throws {
        try watch.wait(for: "step \(step)", seconds: seconds) {
            let state = watch.jobs[job]?["JobState"] ?? ""
            if ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"].contains(state) { throw TestFailure("job \(job) ended \(state) before step \(step)") }
            return (jobRuns(output).last?.steps.last ?? 0) >= step
        }
    }

    /// The images in the checkpoint directory, oldest first (by modification time).
    func images() -> [String] {
        let names = opendirNames(checkpointDirectory).filter { $0.hasSuffix(".stasis") }
        func modified(_ path: String) -> Double {
            var info = stat()
            guard stat(path, &info) == 0 else { return 0 }
            return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        }
        return names.map { checkpointDirectory + "/" + $0 }.sorted { modified($0) < modified($1) }
    }

    /// Checks the runs in the output: `count` of them; the first started the program afresh; each later
    /// one saw SLURM_RESTART_COUNT=i, resumed from an image (`resumedFrom[i-1]` when given) and went on
    /// from the checkpoint (no fresh start, its first step at most one past the previous run's last);
    /// the last one verified; no MISMATCH anywhere.
    @discardableResult
    func expectResumedRuns(count: Int, resumedFrom: [String]? = nil,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> [JobRun] {
        let text = output
        let runs = jobRuns(text)
        try #require(runs.count == count, "\(count) runs: \(runs.map(\.lines))", sourceLocation: sourceLocation)
        #expect(!text.contains("MISMATCH"), "\(text)", sourceLocation: sourceLocation)
        #expect(text.components("simulate: started") == 1, "the program started once", sourceLocation: sourceLocation)
        for (index, run) in runs.enumerated() {
            let first = run.stasisLines.first ?? ""
            if index == 0 {
                #expect(run.restartCount == "unset", sourceLocation: sourceLocation)
                #expect(first.hasPrefix("stasis job: started ") && first.contains("simulate input.dat"), "\(run.lines)",
                        sourceLocation: sourceLocation)
                continue
            }
            #expect(run.restartCount == String(index), "\(run.lines)", sourceLocation: sourceLocation)
            let resumed = run.stasisLines.first { $0.hasPrefix("stasis job: resumed from ") } ?? ""
            let image = resumedFrom.map { $0[index - 1] } ?? checkpointDirectory + "/"
            #expect(resumed.hasPrefix("stasis job: resumed from \(image)"), "\(run.lines)", sourceLocation: sourceLocation)
            let previous = runs[index - 1].steps.last ?? 0
            let next = run.steps.first ?? 0
            #expect(next > 1 && next <= previous + 1, "run \(index + 1) goes on from the checkpoint: step \(next) after \(previous)",
                    sourceLocation: sourceLocation)
        }
        #expect(runs.last?.lines.contains { $0.hasPrefix("simulate: VERIFIED steps=\(steps) ") } == true,
                "\(runs.last?.lines ?? [])", sourceLocation: sourceLocation)
        return runs
    }

    /// A line for the scenario's log (what the test did to the job besides Slurm commands).
    func note(_ line: String) { notes.append(line) }

    /// Prints the log (Slurm states, the output's notable lines, each run's steps) and stops the cluster.
    func finish() {
        var summary = ["--- runs"]
        for (index, run) in jobRuns(output).enumerated() {
            summary.append("  run \(index + 1) (SLURM_RESTART_COUNT=\(run.restartCount)): steps \(run.steps.first ?? 0)-\(run.steps.last ?? 0)")
        }
        summary += notes.map { "--- \($0)" }
        summary.append("--- images: \(images().map { $0.split(separator: "/").last.map(String.init) ?? $0 })")
        printScenario(name, watch: watch, extra: summary)
        cluster.stop()
        withExtendedLifetime(scratch) {}
    }
}

/// One run of a job as its output shows it: from a "job: run SLURM_RESTART_COUNT=…" line to the next.
struct JobRun {
    var restartCount: String
    var lines: [String] = []
    /// The progress numbers i of "simulate: step i/N", in order.
    var steps: [Int] {
        lines.compactMap { line in
            guard line.hasPrefix("simulate: step ") else { return nil }
            return Int(line.dropFirst("simulate: step ".count).split(separator: "/").first ?? "")
        }
    }
    var stasisLines: [String] { lines.filter { $0.hasPrefix("stasis job:") } }
}

func jobRuns(_ text: String) -> [JobRun] {
    var runs: [JobRun] = []
    let marker = "job: run SLURM_RESTART_COUNT="
    for line in text.split(separator: "\n").map(String.init) {
        if line.hasPrefix(marker) {
            runs.append(JobRun(restartCount: String(line.dropFirst(marker.count))))
        } else if !runs.isEmpty {
            runs[runs.count - 1].lines.append(line)
        }
    }
    return runs
}

/// Damages an image: 64 bytes inverted, the first 64 from its middle on that are not all zero (so not
/// the zero padding before page-aligned data, which no checksum covers and no restore reads); of its
/// largest file, for a tree's directory.
func flipBytes(inTheMiddleOf image: String) throws {
    var info = stat()
    guard stat(image, &info) == 0 else { throw TestFailure("stat \(image)") }
    var path = image
    if info.st_mode & S_IFMT == S_IFDIR {
        var largest: (String, Int) = ("", -1)
        for name in opendirNames(image) where name != "." && name != ".." {
            var entry = stat()
            if stat(image + "/" + name, &entry) == 0, entry.st_mode & S_IFMT == S_IFREG, entry.st_size > largest.1 {
                largest = (image + "/" + name, entry.st_size)
            }
        }
        path = largest.0
    }
    let fd = open(path, O_RDWR)
    guard fd >= 0 else { throw TestFailure("open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var size = stat()
    fstat(fd, &size)
    var offset = off_t(size.st_size / 2) & ~63
    var bytes = [UInt8](repeating: 0, count: 64)
    while true {
        guard pread(fd, &bytes, bytes.count, offset) == bytes.count else { throw TestFailure("no data to damage in \(path)") }
        if bytes.contains(where: { $0 != 0 }) { break }
        offset += 64
    }
    bytes = bytes.map { ~$0 }
    guard pwrite(fd, bytes, bytes.count, offset) == bytes.count else { throw TestFailure("pwrite \(path)") }
    fsync(fd)
}

extension String {
    /// How many times `part` occurs (not overlapping).
    func components(_ part: String) -> Int {
        var count = 0
        var rest = self[...]
        while let range = rest.firstRange(of: part) {
            count += 1
            rest = rest[range.upperBound...]
        }
        return count
    }
}
