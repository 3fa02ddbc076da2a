import Glibc

/// `stasis checkpoint`'s command line: the PID and --timeout checked, the rest as parsed (the
/// request code in Checkpoint.swift reads its options from `options`).
struct CheckpointOptions {
    static let valued: Set<String> = ["--dir", "--timeout", "--key"]
    static let flags: Set<String> = ["--help", "--json", "--skip-unsupported", "--no-fork", "--incremental", "--full", "--compress", "--no-compress"]

    var options: OptionParser
    var pid: pid_t
    /// Seconds (default 600).
    var timeout: Double

    /// nil for --help.
    init?(_ arguments: [String]) throws(LauncherError) {
        options = try OptionParser(arguments, valued: Self.valued, flags: Self.flags, command: "checkpoint")
        if options.flags.contains("--help") { return nil }
        guard options.positional.count == 1, let pid = pid_t(options.positional[0]), pid > 0 else {
            throw LauncherError(.usage, "checkpoint needs one PID; usage: stasis checkpoint [--dir DIR] PID")
        }
        self.pid = pid
        timeout = Double(options.values["--timeout"] ?? "600") ?? -1
        guard timeout > 0 else { throw LauncherError(.usage, "--timeout needs a positive number of seconds") }
    }
}
