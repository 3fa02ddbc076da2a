import Glibc
import Testing

extension SlurmTests {
    /// `stasis job` as a batch script's one line under real Slurm (issue 15; Docs/CLUSTER.md):
    ///
    ///     #SBATCH --requeue --open-mode=append --signal=B:USR1@120
    ///     exec stasis job --dir CKPT --checkpoint-on USR1 --requeue -- ./simulate input.dat
    ///
    /// `simulate` (Tests/Fixtures/simulate) steps through input.dat, checks at its end that every step
    /// ran exactly once, in order, with the input read through once, and prints VERIFIED. Each scenario
    /// makes Slurm signal the job (scancel, preemption, time limit), expects the checkpoint, the requeue
    /// and a resume that goes on from the checkpoint, and ends with VERIFIED and the job COMPLETED.
    @Suite(.enabled(if: Stasis.isBuilt, "needs `swift build`"))
    struct StasisJob {
        /// (a) `scancel -b -s USR1`: checkpoint, requeue, resume with SLURM_RESTART_COUNT=1.
        @Test(.timeLimit(.minutes(2)))
        func scancelSignalCheckpointsRequeuesAndResumes() throws {
            let scenario = try SlurmJobScenario(steps: 200)
            defer { scenario.finish() }
            let job = try scenario.submit()
            try scenario.waitForStep(40, job: job)
            try scenario.cluster.require("scancel", ["-b", "-s", "USR1", String(job)])
            let fields = try scenario.watch.wait(job: job, state: "COMPLETED")
            #expect(fields["Restarts"] == "1")
            #expect(fields["ExitCode"] == "0:0")
            try scenario.expectResumedRuns(count: 2)
        }

        /// (b) Preemption by a job in the high partition: the low job's batch shell gets USR1
        /// (preempt_send_user_signal), checkpoints and requeues within GraceTime; the high job runs; then
        /// the low job resumes and completes after it.
        @Test(.timeLimit(.minutes(2)))
        func preemptionCheckpointsRequeuesAndResumesAfterTheHighJob() throws {
            let scenario = try SlurmJobScenario(steps: 200)
            defer { scenario.finish() }
            try writeFile(scenario.scratch.file("high.sh"), "#!/bin/bash\necho \"high: ran on the preempted node\"\nsleep 2\n")
            let job = try scenario.submit()
            try scenario.waitForStep(40, job: job)
            let high = try scenario.cluster.submit(scenario.scratch.file("high.sh"),
                                                   options: ["-p", "high", "-o", scenario.scratch.file("high.out")],
                                                   workingDirectory: scenario.scratch.path)
            scenario.watch.follow(high)
            let highFields = try scenario.watch.wait(job: high, state: "COMPLETED")
            let fields = try scenario.watch.wait(job: job, state: "COMPLETED")
            #expect(fields["Restarts"] == "1")
            #expect(fields["ExitCode"] == "0:0")
            #expect((fields["StartTime"] ?? "") >= (highFields["EndTime"] ?? "~"), "the resumed run starts after the high job ended")
            try scenario.expectResumedRuns(count: 2)
        }

        /// (c) The time limit: `--time=1 --signal=B:USR1@58`. slurmctld checks time limits every 30 s from its
        /// start, so a fresh cluster signals the first run about 27 s in; the job needs about 36 s, so
        /// the resumed run (signalled again about 23 s in, as every run is) normally finishes. A second
        /// requeue is fine too: every run after the first must resume.
        @Test(.timeLimit(.minutes(4)))
        func timeLimitSignalCheckpointsRequeuesAndResumes() throws {
            let scenario = try SlurmJobScenario(steps: 720)
            defer { scenario.finish() }
            let job = try scenario.submit(options: ["--time=1", "--signal=B:USR1@58"])
            let fields = try scenario.watch.wait(job: job, state: "COMPLETED", seconds: 180)
            let restarts = Int(fields["Restarts"] ?? "") ?? 0
            #expect(restarts >= 1)
            #expect(fields["ExitCode"] == "0:0")
            try scenario.expectResumedRuns(count: restarts + 1)
        }

        /// (d) Two checkpoints (two requeues); while the job waits in a partition set DOWN, the newest image
        /// is damaged (bytes flipped in its middle): the third run says it does not verify, resumes
        /// from the one before it (back to the first checkpoint's step), and the job verifies.
        @Test(.timeLimit(.minutes(3)))
        func aDamagedNewestImageResumesFromThePreviousOne() throws {
            let scenario = try SlurmJobScenario(steps: 200)
            defer { scenario.finish() }
            let cluster = scenario.cluster
            let job = try scenario.submit()
            try scenario.waitForStep(30, job: job)
            try cluster.require("scancel", ["-b", "-s", "USR1", String(job)])
            try scenario.watch.wait(for: "the resumed run's progress", seconds: 90) {
                let runs = jobRuns(scenario.output)
                guard runs.count == 2, let first = runs[1].steps.first, let last = runs[1].steps.last else { return false }
                return last >= first + 20
            }
            try cluster.require("scontrol", ["update", "PartitionName=low", "State=DOWN"])
            try cluster.require("scancel", ["-b", "-s", "USR1", String(job)])
            try scenario.watch.wait(for: "the second requeue", seconds: 60) {
                let fields = scenario.watch.jobs[job] ?? [:]
                return fields["JobState"] == "PENDING" && fields["Restarts"] == "2"
            }
            let images = scenario.images()
            try #require(images.count == 2, "two images: \(images)")
            try flipBytes(inTheMiddleOf: images[1])
            let (verified, why) = try Stasis.run(["verify", images[1]], in: scenario.scratch.path)
            try #require(verified == 3, "the damaged image fails `stasis verify`: \(why)")
            scenario.note("damaged \(images[1]): \(why.split(separator: "\n").last ?? "")")
            try cluster.require("scontrol", ["update", "PartitionName=low", "State=UP"])
            let fields = try scenario.watch.wait(job: job, state: "COMPLETED")
            #expect(fields["Restarts"] == "2")
            let runs = try scenario.expectResumedRuns(count: 3, resumedFrom: [images[0], images[0]])
            let third = runs[2].lines.joined(separator: "\n")
            #expect(third.contains("stasis job: \(images[1]) does not verify"), "\(third)")
            // Back to the first checkpoint: the third run goes on where the second began.
            #expect(runs[2].steps.first == runs[1].steps.first)
        }

        /// (e) The end: a job no one signals runs once and completes; and the program's exit status is the
        /// job's after a resume (3: FAILED, ExitCode 3:0, not requeued again).
        @Test(.timeLimit(.minutes(2)))
        func anUnsignalledJobCompletesInOneRun() throws {
            let scenario = try SlurmJobScenario(steps: 40)
            defer { scenario.finish() }
            let job = try scenario.submit()
            let fields = try scenario.watch.wait(job: job, state: "COMPLETED")
            #expect(fields["Restarts"] == "0")
            #expect(fields["ExitCode"] == "0:0")
            let runs = jobRuns(scenario.output)
            #expect(runs.count == 1 && runs[0].stasisLines.count == 1 && runs[0].stasisLines[0].contains("stasis job: started"),
                    "\(runs.map(\.lines))")
            #expect(scenario.output.contains("simulate: VERIFIED steps=40"))
            #expect(scenario.images().isEmpty)
        }

        @Test(.timeLimit(.minutes(2)))
        func theProgramsExitStatusIsTheJobsAfterAResume() throws {
            let scenario = try SlurmJobScenario(steps: 100, exitStatus: 3)
            defer { scenario.finish() }
            let job = try scenario.submit()
            try scenario.waitForStep(20, job: job)
            try scenario.cluster.require("scancel", ["-b", "-s", "USR1", String(job)])
            let fields = try scenario.watch.wait(job: job, state: "FAILED")
            #expect(fields["Restarts"] == "1")
            #expect(fields["ExitCode"] == "3:0")
            try scenario.expectResumedRuns(count: 2)
        }
    }
}
