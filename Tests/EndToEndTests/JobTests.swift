import Glibc
import StasisImage
import Testing

/// `stasis job` outside a scheduler (issue 15; SlurmTests run it under real Slurm): the same command
/// line starts a job, is stopped with a checkpoint by a signal, and resumes it, until the job
/// (Tests/Fixtures/job-steps: a sum and a hash of its steps in memory) verifies itself at its end.
@Suite(.enabled(if: Stasis.isBuilt, "needs `swift build`"))
struct JobTests {
    /// (1) --checkpoint-on USR1 --requeue outside Slurm: a durable image, the program stopped, exit 85
    /// (--exit-code's default; --requeue says why it did not requeue); the same command resumes and the
    /// job verifies. Another command in the same --dir is refused (exit 2).
    @Test(.timeLimit(.minutes(3))) func aCheckpointSignalStopsTheJobAndTheSameCommandResumesIt() throws {
        let scratch = Scratch()
        let binary = try compileFixture("job-steps", into: scratch.path)
        let job = ["job", "--dir", scratch.file("ckpt"), "--checkpoint-on", "USR1", "--requeue", "--", binary, "40", "50000"]
        let log = scratch.file("job.log")
        let first = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { first.killAndReap() }
        try waitUntil("step 5") { logText(log).contains("step 5\n") }
        first.send(SIGUSR1)
        #expect(try first.wait() == .exited(85), "\(logText(log))")
        let stopped = logText(log)
        #expect(stopped.contains("stasis job: started \(binary) 40 50000"), "\(stopped)")
        #expect(stopped.contains("(--requeue: not in a Slurm job, SLURM_JOB_ID is unset)"), "\(stopped)")
        #expect(!stopped.contains("VERIFIED"))
        let images = opendirNames(scratch.file("ckpt")).filter { $0.hasSuffix(".stasis") }
        #expect(images.count == 1, "\(images)")

        let (refused, why) = try Stasis.run(["job", "--dir", scratch.file("ckpt"), "--", binary, "41"], in: scratch.path)
        #expect(refused == 2 && why.contains("holds checkpoints of another job (\(binary) 40 50000)"), "\(why)")

        let second = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { second.killAndReap() }
        #expect(try second.wait() == .exited(0), "\(logText(log))")
        let text = logText(log)
        #expect(text.contains("stasis job: resumed from \(scratch.file("ckpt"))/\(images[0])"), "\(text)")
        #expect(text.contains("VERIFIED 40") && !text.contains("WRONG"), "\(text)")
    }

    /// (2) --interval leaves several images; the newest is then damaged (truncated): the next run says it
    /// does not verify, resumes from the one before it, and the job verifies.
    @Test(.timeLimit(.minutes(3))) func aDamagedNewestImageResumesFromThePreviousOne() throws {
        let scratch = Scratch()
        let binary = try compileFixture("job-steps", into: scratch.path)
        let directory = scratch.file("ckpt")
        let job = ["job", "--dir", directory, "--interval", "1s", "--checkpoint-on", "TERM", "--exit-code", "3", "--", binary, "60", "50000"]
        let log = scratch.file("job.log")
        let first = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { first.killAndReap() }
        try waitUntil("two periodic images") { opendirNames(directory).filter { $0.hasSuffix(".stasis") }.count >= 2 }
        first.send(SIGTERM)
        #expect(try first.wait() == .exited(3), "\(logText(log))")
        let images = opendirNames(directory).filter { $0.hasSuffix(".stasis") }.sorted()
        let newest = directory + "/" + images[images.count - 1]
        let previous = directory + "/" + images[images.count - 2]
        #expect(truncate(newest, 4096) == 0)

        let second = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { second.killAndReap() }
        #expect(try second.wait() == .exited(0), "\(logText(log))")
        let text = logText(log)
        #expect(text.contains("stasis job: \(newest) does not verify"), "\(text)")
        #expect(text.contains("stasis job: resumed from \(previous)"), "\(text)")
        #expect(text.contains("VERIFIED 60") && !text.contains("WRONG"), "\(text)")
    }

    /// (3) A checkpoint that fails (the program holds a pidfd) leaves the program running: stasis job
    /// says why, and the job runs to its end and verifies.
    @Test(.timeLimit(.minutes(3))) func aFailedCheckpointLeavesTheProgramRunning() throws {
        let scratch = Scratch()
        let binary = try compileFixture("job-steps", into: scratch.path)
        let log = scratch.file("job.log")
        let job = try ChildProcess(Stasis.launcher, ["job", "--dir", scratch.file("ckpt"), "--checkpoint-on", "USR1", "--", binary, "30", "50000", "pidfd"],
                                   outputPath: log)
        defer { job.killAndReap() }
        try waitUntil("step 3") { logText(log).contains("step 3\n") }
        job.send(SIGUSR1)
        #expect(try job.wait() == .exited(0), "\(logText(log))")
        let text = logText(log)
        #expect(text.contains("stasis job: the checkpoint failed") && text.contains("the program keeps running"), "\(text)")
        #expect(text.contains("VERIFIED 30"), "\(text)")
    }

    /// (3b) A job with children (a bash script waiting on a `sleep` each step): the checkpoint is a tree,
    /// stopping the job ends every process of it and reaps them (stasis job is their subreaper), so the
    /// next run finds their PIDs free and resumes the tree on the host (root), and the script verifies.
    @Test(.timeLimit(.minutes(3)), .enabled(if: geteuid() == 0 && access("/bin/bash", X_OK) == 0, "root (PIDs on the host) and bash"))
    func aJobWithChildrenStopsWhollyAndResumesWithItsPIDs() throws {
        let scratch = Scratch()
        let script = scratch.file("steps.sh")
        try "#!/bin/bash\ntotal=0\nfor i in $(seq 1 30); do total=$((total+i)); echo \"step $i\"; sleep 0.05 & wait $!; done\n[ $total = 465 ] && echo VERIFIED || echo WRONG\n"
            .write(toFile: script)
        chmod(script, 0o755)
        let job = ["job", "--dir", scratch.file("ckpt"), "--checkpoint-on", "USR1", "--", script]
        let log = scratch.file("job.log")
        let first = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { first.killAndReap() }
        try waitUntil("step 4") { logText(log).contains("step 4\n") }
        first.send(SIGUSR1)
        #expect(try first.wait() == .exited(85), "\(logText(log))")
        let tree = opendirNames(scratch.file("ckpt")).filter { $0.hasSuffix(".stasis") }
        #expect(tree.count == 1 && access(scratch.file("ckpt") + "/" + tree[0] + "/tree", F_OK) == 0, "a tree checkpoint: \(tree)")
        let second = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { second.killAndReap() }
        #expect(try second.wait() == .exited(0), "\(logText(log))")
        let text = logText(log)
        #expect(text.contains("stasis job: resumed from") && !text.contains("namespace"), "on the host: \(text)")
        #expect(text.contains("VERIFIED") && !text.contains("WRONG"), "\(text)")
    }

    /// (4) Other signals go to the program, and the job ends as it does: SIGTERM without --checkpoint-on TERM.
    @Test(.timeLimit(.minutes(2))) func otherSignalsReachTheProgramAndItsEndIsTheJobs() throws {
        let scratch = Scratch()
        let binary = try compileFixture("job-steps", into: scratch.path)
        let log = scratch.file("job.log")
        let job = try ChildProcess(Stasis.launcher, ["job", "--dir", scratch.file("ckpt"), "--checkpoint-on", "USR1", "--", binary, "100", "50000"],
                                   outputPath: log)
        defer { job.killAndReap() }
        try waitUntil("step 2") { logText(log).contains("step 2\n") }
        job.send(SIGTERM)
        #expect(try job.wait() == .signaled(SIGTERM), "\(logText(log))")
    }
}

private func logText(_ path: String) -> String { (try? String(contentsOfFile: path)) ?? "" }
