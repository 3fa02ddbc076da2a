import Glibc
import StasisSystem

/// `stasis job --dir DIR ... -- PROGRAM ARGS`: one line in a batch script for the first run and every
/// requeue. Resumes the job's newest image that verifies, or starts PROGRAM afresh; stays its parent;
/// on a --checkpoint-on signal checkpoints it, stops it and asks the scheduler to run it again.
///
/// Algorithm (Docs/CLUSTER.md has the recipes; each step a function here or in Job/):
///   1. options; DIR made and claimed for this job (program + arguments)    JobOptions, JobDirectory.claim
///   2. block the forwarded and checkpoint signals (none is lost from here)  JobSupervisor.init
///   3. the newest verified image → `stasis restart`, else `stasis run`      JobDirectory.newestVerified, start
///   4. forward signals; --interval checkpoints; on SIG: checkpoint (durable), stop the program, requeue
///      (scontrol) or exit --exit-code; a failed checkpoint leaves it running  JobSupervisor.run
///   5. the program's end is ours (its exit status, or its signal)
enum JobCommand {
    static let help = """
        usage: stasis job --dir DIR [--checkpoint-on SIG]... [--requeue] [--exit-code N] [--interval D] [--keep N]
                          [--signal SIG] [--key FILE] [--no-fork] [--skip-unsupported] [--compress] [--eager] [--pid-file F]
                          -- PROGRAM ARGS...

        Runs a job that outlives its allocation: a batch script's one line, the same on the first run and
        on every requeue (Docs/CLUSTER.md).
          --dir DIR            the job's checkpoint directory (created 0700 if missing). A job is PROGRAM (as
                               an absolute path) and ARGS: DIR/stasis-job records them, and DIR serves one job
          If DIR holds images of this job, the newest that verifies is restarted (a newer one that does not
          is named on stderr and skipped); otherwise PROGRAM starts afresh under the agent. stderr says which
          ("stasis job: started ...", "stasis job: resumed from IMAGE"). stasis job stays the program's parent,
          forwards signals to it, and exits as it does.
          --checkpoint-on SIG  on SIG (may be given more than once): checkpoint the program, wait until the
                               image is durable, stop the program, then exit --exit-code, or with --requeue
                               inside a Slurm job (SLURM_JOB_ID) run `scontrol requeue` and exit 0. A
                               checkpoint that fails leaves the program running and says why; a SIG that
                               comes during a checkpoint is kept for after it
          --requeue            see --checkpoint-on
          --exit-code N        exit status after a --checkpoint-on checkpoint (default 85; HTCondor's
                               checkpoint_exit_code)
          --interval D         also checkpoint every D (90s, 15m, 2h) while the program runs
          --keep N             keep only the N newest images (never one a kept incremental image needs)
          --signal, --key, --no-fork, --skip-unsupported, --compress: as for `stasis run`; --eager: as for `stasis restart`
          --pid-file F         write the program's PID (on the host) to F, again after each resume
        """

    static func main(_ arguments: [String]) throws(LauncherError) -> Int32 {
        if arguments.first == "--help" || arguments.first == "-h" {
            printOut(help)
            return 0
        }
        guard let options = try JobOptions(arguments) else {
            printOut(help)
            return 0
        }
        let directory = JobDirectory(path: try makeImageDirectory(options.directory))
        try directory.claim(JobDirectory.identity(program: options.programPath, arguments: Array(options.command.dropFirst())))
        let supervisor = JobSupervisor(options, directory: directory)
        try supervisor.start()
        return supervisor.run()
    }
}

/// `stasis job`'s command line, checked before anything starts.
struct JobOptions {
    static let valued: Set<String> = ["--dir", "--checkpoint-on", "--exit-code", "--interval", "--keep", "--signal", "--key",
                                      "--pid-file"]
    static let flags: Set<String> = ["--help", "--requeue", "--no-fork", "--skip-unsupported", "--eager", "--compress"]

    var directory: String
    /// PROGRAM ARGS as given; `programPath`: PROGRAM found as execvp would, made absolute.
    var command: [String]
    var programPath: String
    var checkpointSignals: [Int32]
    var requeue: Bool
    var exitCode: Int32
    var interval: Double?
    var keyPath: String?
    var pidFile: String?
    var eager: Bool
    /// Passed on to `stasis run` (a fresh start; a restored program keeps what it had).
    var runOptions: [String]

    /// nil for --help.
    init?(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: Self.valued, flags: Self.flags, command: "job", stopAtFirstPositional: true)
        if options.flags.contains("--help") { return nil }
        guard let directory = options.values["--dir"] else {
            throw LauncherError(.usage, "job needs --dir DIR (where its checkpoints live); see `stasis job --help`")
        }
        guard let program = options.positional.first else {
            throw LauncherError(.usage, "job needs a PROGRAM; usage: stasis job --dir DIR [options] -- PROGRAM ARGS...")
        }
        guard let found = RunCommand.executablePath(program), let path = absolutePath(found) else {
            throw LauncherError(.cannotExecute, "cannot run \(program): no such executable (searched $PATH)")
        }
        self.directory = directory
        command = options.positional
        programPath = path
        checkpointSignals = []
        for name in options.allValues["--checkpoint-on"] ?? [] {
            guard let signal = parseSignal(name), signal != SIGKILL, signal != SIGSTOP, signal != SIGCHLD else {
                throw LauncherError(.usage, "--checkpoint-on needs a catchable signal like USR1 or TERM, not '\(name)'")
            }
            checkpointSignals.append(signal)
        }
        requeue = options.flags.contains("--requeue")
        let code = options.values["--exit-code"] ?? "85"
        guard let n = Int32(code), (0...255).contains(n) else { throw LauncherError(.usage, "--exit-code needs 0-255") }
        exitCode = n
        interval = try options.values["--interval"].map { (text) throws(LauncherError) in try parseInterval(text) }
        keyPath = try options.values["--key"].map { (path) throws(LauncherError) in
            _ = try readKeyFile(path)  // fail now, not at the first checkpoint
            guard let absolute = absolutePath(path) else { throw LauncherError(.usage, "cannot resolve \(path)") }
            return absolute
        }
        pidFile = options.values["--pid-file"]
        eager = options.flags.contains("--eager")
        runOptions = []
        for name in ["--keep", "--signal"] { if let value = options.values[name] { runOptions += [name, value] } }
        if let keyPath { runOptions += ["--key", keyPath] }
        for flag in ["--no-fork", "--skip-unsupported", "--compress"] where options.flags.contains(flag) { runOptions.append(flag) }
    }
}
