import Glibc
import StasisSystem

/// `stasis run`: exec PROGRAM in place (same PID) with the agent preloaded.
enum RunCommand {
    static let help = """
        usage: stasis run [--dir DIR] [--signal SIG] [--keep N] [--key FILE] [--incremental [--max-chain N]] [--compress] [--skip-unsupported]
                          [--no-fork] [--checkpoint-on SIG [--exit-code N]] [--interval D] [--pid-file F] [--pid-namespace]
                          -- PROGRAM ARGS...

        Runs PROGRAM in place of stasis (same PID) with the checkpoint agent preloaded.
          --dir DIR       where images go (default: the current directory); created (mode 0700) if missing
          --signal SIG    checkpoint trigger signal (default: USR2); use another if PROGRAM owns SIGUSR2
          --keep N        keep only the N newest images of each process (older ones are removed once a
                          newer one is complete); default: keep all
          --checkpoint-on SIG  on SIG (e.g. TERM), write a checkpoint and exit with --exit-code (default 0):
                          for schedulers that warn before preemption (Slurm --signal, HTCondor
                          checkpoint_exit_code); if the checkpoint fails the program dies of SIG
          --exit-code N   exit status after a --checkpoint-on checkpoint
          --interval D    also checkpoint every D (e.g. 90s, 15m, 2h), from a detached watcher process that
                          is not the program's child and ends when the program does
          --key FILE      sign every image with HMAC-SHA256 using FILE's bytes (1-4000); the key stays in
                          the agent's scratch memory, which images never contain
          --no-fork       write images from inside the program while it is frozen, instead of the default
                          copy-on-write (once every thread is captured, a detached copy of the process
                          writes memory while the program runs on: the pause no longer grows with memory;
                          the cost is page faults on first writes meanwhile)
          --incremental   every checkpoint after the first stores only the pages written since the one
                          before (userfaultfd write protection); restart follows the chain of images
          --max-chain N   with --incremental: chains stay at most N images long (default 8): `stasis
                          checkpoint` compacts the N-th into a standalone image (`stasis compact`) that
                          the next one builds on; a checkpoint by signal alone starts a new chain with
                          a full image instead
          --compress      store every image's page data in compressed blocks (image format 4): smaller
                          images, a little more CPU in the writer; blocks that do not shrink are stored
                          as they are
          --skip-unsupported  checkpoints go on past descriptors Stasis cannot save; restart puts /dev/null there
          --pid-file F    write the PID to F (with --pid-namespace: the program's PID on the host)
          --pid-namespace run PROGRAM as PID 2 of a new PID namespace (with a user namespace when not root, and
                          its own /proc); stasis stays as its parent, forwards signals and exits as it does.
                          Its images hold PIDs no host process has, so any restart (an ordinary user's too)
                          gives them back in a namespace of its own
        LD_PRELOAD, STASIS_DIR and STASIS_SIGNAL are set for PROGRAM and inherited by its children,
        which can be checkpointed too.
        """

    static let valued: Set<String> = ["--dir", "--signal", "--pid-file", "--keep", "--key", "--checkpoint-on", "--exit-code",
                                      "--interval", "--max-chain"]
    static let flags: Set<String> = ["--help", "--skip-unsupported", "--no-fork", "--incremental", "--pid-namespace", "--compress"]

    /// Returns only with --pid-namespace (the program's exit status) or --help (0): otherwise PROGRAM replaces it.
    static func main(_ arguments: [String]) throws(LauncherError) -> Int32 {
        if arguments.first == "--help" || arguments.first == "-h" {
            printOut(help)
            return 0
        }
        let options = try OptionParser(arguments, valued: valued, flags: flags, command: "run", stopAtFirstPositional: true)
        if options.flags.contains("--help") {
            printOut(help)
            return 0
        }
        guard let program = options.positional.first else {
            throw LauncherError(.usage, "run needs a PROGRAM; usage: stasis run [options] -- PROGRAM ARGS...")
        }
        let imageDirectory = try makeImageDirectory(options.values["--dir"] ?? ".")  // created when missing
        let signal = try triggerSignal(options)
        let agent = Installation.agentLibrary
        guard FileSystem.isAccessible(agent, R_OK) else {
            throw LauncherError(.failure, "agent library not found at \(agent); build with `swift build` first")
        }
        ProcessControl.setEnvironmentValue("LD_PRELOAD", preloadList(agent, existing: ProcessControl.environmentValue("LD_PRELOAD")))
        var keyFile: String?
        if let keyPath = options.values["--key"] {
            _ = try readKeyFile(keyPath)  // fail now, not at the first checkpoint
            guard let absolute = absolutePath(keyPath) else { throw LauncherError(.usage, "cannot resolve \(keyPath)") }
            keyFile = absolute
        }
        var environment = try agentEnvironment(options, signal: signal)
        environment[.directory] = imageDirectory
        environment[.keyFile] = keyFile
        for variable in AgentVariable.allCases { ProcessControl.setEnvironmentValue(variable.rawValue, environment[variable]) }
        if options.flags.contains("--pid-namespace") {
            var checkpointArguments = ["--dir", imageDirectory]
            if let keyFile { checkpointArguments += ["--key", keyFile] }
            if options.flags.contains("--skip-unsupported") { checkpointArguments.append("--skip-unsupported") }
            return try runInNamespace(options.positional, options: options, checkpointArguments: checkpointArguments)
        }
        if let pidFile = options.values["--pid-file"] {
            try writePIDFile(pidFile, getpid())
        }
        if let text = options.values["--interval"] {
            let seconds = try parseInterval(text)
            // The watcher's checkpoints go to the same directory, with the same key, if any.
            var checkpointArguments = ["--dir", imageDirectory]
            if let keyFile { checkpointArguments += ["--key", keyFile] }
            if options.flags.contains("--skip-unsupported") { checkpointArguments.append("--skip-unsupported") }
            try WatchCommand.startWatcher(interval: seconds, checkpointArguments: checkpointArguments)
        }
        let error = ProcessControl.execute(program, arguments: options.positional)
        throw LauncherError(.cannotExecute, "cannot run \(program): \(error)")
    }

    /// --signal: the trigger (default SIGUSR2); never SIGKILL or SIGSTOP.
    static func triggerSignal(_ options: OptionParser) throws(LauncherError) -> Int32 {
        guard let name = options.values["--signal"] else { return SIGUSR2 }
        guard let parsed = parseSignal(name), parsed != SIGKILL, parsed != SIGSTOP else {
            throw LauncherError(.usage, "unknown or unusable signal '\(name)'; use a name like USR1 or a number")
        }
        return parsed
    }

    /// LD_PRELOAD with the agent first; unchanged when the agent is there already (with the user's
    /// other libraries: leave it as it is).
    static func preloadList(_ agent: String, existing: String?) -> String {
        guard let existing, !existing.isEmpty else { return agent }
        if existing.split(whereSeparator: { $0 == ":" || $0 == " " }).contains(where: { $0 == agent }) { return existing }
        return agent + ":" + existing
    }

    /// The agent's variables for the options (stasis_protocol.h), nil for "unset" (an outer `stasis
    /// run`'s values are not inherited). STASIS_DIR and STASIS_KEY_FILE are the caller's.
    static func agentEnvironment(_ options: OptionParser, signal: Int32) throws(LauncherError) -> [AgentVariable: String] {
        var environment: [AgentVariable: String] = [.signal: String(signal)]
        if let name = options.values["--checkpoint-on"] {
            guard let exitSignal = parseSignal(name), exitSignal != SIGKILL, exitSignal != SIGSTOP, exitSignal != signal else {
                throw LauncherError(.usage, "--checkpoint-on needs a catchable signal other than the trigger (\(signal))")
            }
            environment[.exitSignal] = String(exitSignal)
            let code = options.values["--exit-code"] ?? "0"
            guard let n = Int(code), (0...255).contains(n) else { throw LauncherError(.usage, "--exit-code needs 0-255") }
            environment[.exitCode] = String(n)
        } else if options.values["--exit-code"] != nil {
            throw LauncherError(.usage, "--exit-code goes with --checkpoint-on")
        }
        if options.flags.contains("--no-fork") { environment[.fork] = "0" }
        if options.flags.contains("--skip-unsupported") { environment[.skipUnsupported] = "1" }
        if options.flags.contains("--incremental") { environment[.incremental] = "1" }
        if options.flags.contains("--compress") { environment[.compress] = "1" }
        if let text = options.values["--max-chain"] {
            guard options.flags.contains("--incremental"), let n = Int(text), (1...1000).contains(n) else {
                throw LauncherError(.usage, "--max-chain needs --incremental and a number of images from 1 to 1000")
            }
            environment[.maxChain] = String(n)
        }
        if let keep = options.values["--keep"] {
            guard let n = Int(keep), n >= 1, n <= 1_000_000 else {
                throw LauncherError(.usage, "--keep needs a number of images, 1 or more")
            }
            environment[.keep] = String(n)
        }
        return environment
    }
}
