import Glibc
import StasisSystem

/// `stasis run --interval D`: periodic checkpoints from a small watcher process, never from inside
/// the program (the agent adds no timer or thread) and never as the program's child (a detached
/// grandchild of the launcher, reparented away from the program before it starts).
///
///   stasis run --interval D ...  -> posix_spawn `stasis __watch-detach ...`, wait for it, exec PROGRAM
///   __watch-detach               -> posix_spawn `stasis __watch ...` in a new session, exit at once
///   __watch PID START D ARGS...  -> every D: `stasis checkpoint ARGS PID`, until PID (with that start
///                                   time) is gone
enum WatchCommand {
    /// Seconds from "90", "90s", "15m", "2h".
    static func parseDuration(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        var number = Substring(text)
        var scale = 1.0
        if let last = text.last, let unit = units[last] {
            scale = unit
            number = number.dropLast()
        }
        guard let value = Double(number), value > 0 else { return nil }
        return value * scale
    }

    /// The process's start time (field 22 of /proc/PID/stat): a reused PID has another. Nil once it
    /// is gone, and also while it is a zombie (killed, not yet reaped by its parent): it has no memory
    /// left to checkpoint, and its PID and start time stay until the reap.
    static func startTime(_ pid: pid_t) -> String? {
        guard let stat = try? readFile("/proc/\(pid)/stat") else { return nil }  // gone
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return String(fields[19])
    }

    /// Starts the detached watcher for this process (called by `run` before it execs the program).
    static func startWatcher(interval: Double, checkpointArguments: [String]) throws(LauncherError) {
        let pid = getpid()
        guard let start = startTime(pid) else { throw LauncherError(.failure, "cannot read /proc/self/stat") }
        let child = try spawnSelf(["__watch-detach", String(pid), start, String(interval)] + checkpointArguments, newSession: false)
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw LauncherError(.failure, "cannot start the --interval watcher") }
    }

    static func detach(_ arguments: [String]) -> Int32 {
        do {
            _ = try spawnSelf(["__watch"] + arguments, newSession: true)
            return 0
        } catch {
            printError("stasis: \(error.message)")
            return 1
        }
    }

    static func watch(_ arguments: [String]) -> Int32 {
        guard arguments.count >= 3, let pid = pid_t(arguments[0]), let interval = Double(arguments[2]) else { return 2 }
        let start = arguments[1]
        let extra = Array(arguments.dropFirst(3))
        while true {
            var remaining = interval
            while remaining > 0 {
                let step = min(remaining, 1.0)
                usleep(UInt32(step * 1_000_000))
                remaining -= step
                if startTime(pid) != start { return 0 }  // the program is gone
            }
            do {
                try CheckpointCommand.main(extra + [String(pid)])
            } catch {
                // Our stderr is the program's: a program that ended meanwhile gets no message there.
                if startTime(pid) != start { return 0 }
                printError("stasis: periodic checkpoint of \(pid) failed: \(error.message)")
            }
        }
    }

    /// posix_spawn of this executable with stdin/stdout on /dev/null, default signals, no LD_PRELOAD.
    static func spawnSelf(_ arguments: [String], newSession: Bool) throws(LauncherError) -> pid_t {
        let path = Installation.directory + "/stasis"
        var environment: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            let variable = String(cString: pointer)
            if !variable.hasPrefix("LD_PRELOAD=") { environment.append(variable) }
            entry += 1
        }
        do {
            return try spawnWithDefaultSignals(path, arguments: arguments, environment: environment, newSession: newSession) { actions in
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            }
        } catch {
            throw LauncherError(.failure, "cannot start \(path): \(error)")
        }
    }
}
