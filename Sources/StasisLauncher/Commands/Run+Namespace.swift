import CStasisSpawn
import Glibc
import StasisSystem

/// `stasis run --pid-namespace`: PROGRAM starts as PID 2 of a new PID namespace (and a user namespace
/// when not root) under an init of ours (NamespaceInit, Docs/ARCHITECTURE.md 3.7). Its images then hold
/// small PIDs that no host process has: any restart, an ordinary user's too, puts it in a namespace of
/// its own with the same PIDs. `stasis run` cannot exec in place here: it stays as the init's parent,
/// forwards signals to the program, runs --interval checkpoints itself, and exits as the program does.
extension RunCommand {
    static func runInNamespace(_ arguments: [String], options: OptionParser, checkpointArguments: [String]) throws(LauncherError) -> Int32 {
        guard let path = executablePath(arguments[0]) else {
            throw LauncherError(.cannotExecute, "cannot run \(arguments[0]): No such file or directory")
        }
        let interval = try options.values["--interval"].map { (text) throws(LauncherError) in try parseInterval(text) }
        var before = sigset_t()
        sigprocmask(SIG_BLOCK, nil, &before)  // only reads the mask
        let blocked = SignalForwarder.blockForwardedSignals()
        // The program gets the caller's mask back: unblock what was blocked for the forwarding alone.
        var unblock: UInt64 = 0
        var forwarding = blocked.raw
        for signal in Int32(1)...64 where sigismember(&before, signal) == 0 && sigismember(&forwarding, signal) == 1 {
            unblock |= 1 << UInt64(signal - 1)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let started = NamespaceInit.start { settings in
            var settings = settings
            return argv.withUnsafeBufferPointer { args in stasis_run_in_namespace(path, args.baseAddress!, environ, unblock, &settings) }
        }
        let namespace: NamespaceInit
        switch started {
        case .success(let value): namespace = value
        case .failure(let refusal):
            throw LauncherError(.failure, "cannot start \(arguments[0]) in a PID namespace: \(refusal.reason); run it without --pid-namespace")
        }
        if let pidFile = options.values["--pid-file"] { try writePIDFile(pidFile, namespace.programHostPID) }
        var forwarder = SignalForwarder(program: namespace.programHostPID, blocked: blocked, interval: interval,
                                        checkpointArguments: checkpointArguments, laterStatus: [])
        forwarder.namespace = namespace
        return forwarder.run()
    }

    /// PROGRAM as execvp would find it: a path with a slash as it is, else the first executable regular
    /// file of that name in $PATH (default /usr/local/bin:/usr/bin:/bin).
    static func executablePath(_ program: String) -> String? {
        func isExecutableFile(_ path: String) -> Bool {
            guard let status = try? fileStatus(path) else { return false }
            return status.st_mode & S_IFMT == S_IFREG && FileSystem.isAccessible(path, X_OK)
        }
        if program.contains("/") { return isExecutableFile(program) ? program : nil }
        let search = ProcessControl.environmentValue("PATH") ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in search.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + program
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }
}
