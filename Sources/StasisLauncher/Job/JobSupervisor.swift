import CStasisSpawn
import Glibc
import StasisSystem

/// `stasis job` while the program runs: its child is `stasis run` (which becomes the program) or
/// `stasis restart` (the program's parent); signals go to the program itself, by its PID on the host.
final class JobSupervisor {
    let options: JobOptions
    let directory: JobDirectory
    /// Every signal stasis job takes is blocked from the start, so none is lost (a checkpoint signal
    /// that comes during a checkpoint waits for it).
    let blocked: SignalSet
    private(set) var child: pid_t = 0
    private(set) var program: pid_t = 0
    private var periodic: pid_t?

    init(_ options: JobOptions, directory: JobDirectory) {
        self.options = options
        self.directory = directory
        blocked = SignalSet(SignalForwarder.forwarded + options.checkpointSignals + [SIGCHLD])
        blocked.block()
        // The program's orphans become ours, not init's: stopping the job ends them too, and reaps them
        // at once (a zombie nobody reaps would keep its PID from the next run).
        _ = stasis_set_child_subreaper(1)  // EINVAL only
    }

    /// Resumes the newest image that verifies, or starts the program afresh; says which.
    func start() throws(LauncherError) {
        let key = try readKeyFile(ifGiven: options.keyPath)
        let (image, rejected) = directory.newestVerified(key: key)
        for (path, why) in rejected { printError("stasis job: \(path) does not verify (\(why)); trying the one before it") }
        if let image {
            try resume(image)
            printError("stasis job: resumed from \(image) (PID \(program))")
        } else if !rejected.isEmpty {
            throw LauncherError(.badImage, "no checkpoint in \(directory.path) verifies; move them away to start \(options.command[0]) afresh")
        } else {
            child = try spawn(["run", "--dir", directory.path] + options.runOptions + ["--"] + options.command)
            program = child
            printError("stasis job: started \(options.command.joined(separator: " ")) (PID \(program))")
        }
        if let pidFile = options.pidFile { try writePIDFile(pidFile, program) }
    }

    /// `stasis restart IMAGE` as our child; returns once the program is back (its PID in a private file).
    private func resume(_ image: String) throws(LauncherError) {
        let pidFile = directory.path + "/.stasis-job-\(getpid()).pid"
        unlink(pidFile)
        defer { unlink(pidFile) }
        var arguments = ["restart", "--pid-file", pidFile]
        if options.eager { arguments.append("--eager") }
        if let key = options.keyPath { arguments += ["--key", key] }
        child = try spawn(arguments + [image])
        while true {
            if let text = try? readFile(pidFile), let pid = pid_t(String(decoding: text, as: UTF8.self).filter(\.isNumber)) {
                program = pid
                return
            }
            if let status = (try? ProcessControl.wait(child, noHang: true)) ?? nil {
                // restart said why on stderr (ours); its exit code is the job's.
                var code = ExitCode.restoreFailed
                if case .exited(let n) = ExitStatus(waitStatus: status), let known = ExitCode(rawValue: n) { code = known }
                throw LauncherError(code, "cannot resume from \(image) (\(Self.describe(status)) from stasis restart)")
            }
            usleep(5000)
        }
    }

    /// Until the program ends (its end is returned as ours), or a checkpoint signal ends the job.
    func run() -> Int32 {
        var nextCheckpoint = options.interval.map { now() + $0 }
        while true {
            if let helper = periodic, let status = (try? ProcessControl.wait(helper, noHang: true)) ?? nil {
                periodic = nil
                if status != 0 { printError("stasis job: a periodic checkpoint failed (\(Self.describe(status))); the program keeps running") }
            }
            if let due = nextCheckpoint, let interval = options.interval, now() >= due {
                if periodic == nil { periodic = try? spawn(checkpointArguments(), quiet: true) }  // nil: the next interval tries again
                nextCheckpoint = now() + interval
            }
            while ProcessControl.reapOther(than: Set([child] + (periodic.map { [$0] } ?? []))) != nil {}  // orphans of the program
            if let status = (try? ProcessControl.wait(child, noHang: true)) ?? nil { return end(status) }
            guard let (signal, info) = (try? blocked.wait(timeout: 1)) ?? nil, signal != SIGCHLD else { continue }
            if options.checkpointSignals.contains(signal) {
                if let code = checkpointAndStop(after: signal) { return code }
                continue
            }
            // Keyboard signals reached the program's process group already.
            if info.si_code == SI_KERNEL && [SIGINT, SIGQUIT, SIGTSTP].contains(signal) { continue }
            try? ProcessControl.send(signal, to: program)  // ESRCH: it just ended; the next wait sees it
        }
    }

    /// On a checkpoint signal: a durable image, then the program stopped, then requeue or --exit-code.
    /// nil when the checkpoint failed: the program keeps running.
    private func checkpointAndStop(after signal: Int32) -> Int32? {
        printError("stasis job: signal \(signal): checkpointing PID \(program)")
        let (status, image) = checkpointNow()
        guard status == 0 else {
            printError("stasis job: the checkpoint failed (\(Self.describe(status))); the program keeps running")
            return nil
        }
        if let periodic { _ = try? ProcessControl.wait(periodic) }
        killAll()
        if options.requeue, let job = ProcessControl.environmentValue("SLURM_JOB_ID") {
            if requeue(job) {
                printError("stasis job: checkpointed to \(image); Slurm job \(job) requeued")
                return 0
            }
            printError("stasis job: checkpointed to \(image); `scontrol requeue \(job)` failed: exiting \(options.exitCode)")
            return options.exitCode
        }
        let why = options.requeue ? " (--requeue: not in a Slurm job, SLURM_JOB_ID is unset)" : ""
        printError("stasis job: checkpointed to \(image); exiting \(options.exitCode)\(why): the same command resumes it")
        return options.exitCode
    }

    /// The program and every process under it (in a namespace, its init too) SIGKILLed, stopped first from
    /// the top so that none forks meanwhile; then every child of ours reaped (our child, and the orphans
    /// that became ours), so that the next run finds their PIDs free.
    private func killAll() {
        var order: [pid_t] = []
        var queue = [child]
        while !queue.isEmpty {
            let pid = queue.removeFirst()
            guard pid > 0, !order.contains(pid) else { continue }
            try? ProcessControl.send(SIGSTOP, to: pid)  // ESRCH: it ended meanwhile
            order.append(pid)
            queue += childrenOf(pid)
        }
        for pid in order { try? ProcessControl.send(SIGKILL, to: pid) }
        killAndReapChildren(seconds: 5)
    }

    /// `stasis checkpoint --dir DIR PID`, waited for: its wait status and the image it printed.
    private func checkpointNow() -> (Int32, String) {
        let output = scratchFile("checkpoint")
        defer { unlink(output) }
        guard let helper = try? spawn(checkpointArguments(), stdoutPath: output) else { return (1 << 8, "") }
        let status = (try? ProcessControl.wait(helper)) ?? (1 << 8)
        let text = (try? readFile(output)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return (status, text.split(separator: "\n").last.map(String.init) ?? "")
    }

    private func checkpointArguments() -> [String] {
        var arguments = ["checkpoint", "--dir", directory.path]
        if let key = options.keyPath { arguments += ["--key", key] }
        return arguments + [String(program)]
    }

    /// `scontrol requeue JOB`; whether it succeeded.
    private func requeue(_ job: String) -> Bool {
        guard let scontrol = RunCommand.executablePath("scontrol") else {
            printError("stasis job: scontrol is not on PATH")
            return false
        }
        let environment = ProcessControl.environment.filter { !$0.hasPrefix("LD_PRELOAD=") }
        guard let pid = try? spawnWithDefaultSignals(scontrol, arguments: ["requeue", job], environment: environment, fileActions: { _ in }) else {
            return false
        }
        return ((try? ProcessControl.wait(pid)) ?? 1) == 0
    }

    /// The program's end as the job's: its exit status, or its fatal signal raised again.
    private func end(_ status: Int32) -> Int32 {
        switch ExitStatus(waitStatus: status) {
        case .exited(let code): return code
        case .signaled(let signal):
            ProcessControl.dieOfSignal(signal)
            return 128 + signal
        }
    }

    /// `stasis ARGUMENTS` as our child with default signals: stdio ours (or stdout to `stdoutPath`, or
    /// /dev/null when `quiet`).
    private func spawn(_ arguments: [String], stdoutPath: String? = nil, quiet: Bool = false) throws(LauncherError) -> pid_t {
        let path = Installation.executable
        let environment = ProcessControl.environment.filter { !$0.hasPrefix("LD_PRELOAD=") }
        do {
            return try spawnWithDefaultSignals(path, arguments: arguments, environment: environment) { actions in
                if let stdoutPath {
                    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                } else if quiet {
                    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
                }
            }
        } catch {
            throw LauncherError(.failure, "cannot start \(path): \(error)")
        }
    }

    /// "exit 7", "signal 9".
    static func describe(_ status: Int32) -> String {
        switch ExitStatus(waitStatus: status) {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }

    private func scratchFile(_ name: String) -> String { directory.path + "/.stasis-job-\(getpid())-\(name)" }
}
