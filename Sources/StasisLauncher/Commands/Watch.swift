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
    /// Starts the detached watcher for this process (called by `run` before it execs the program).
    static func startWatcher(interval: Double, checkpointArguments: [String]) throws(LauncherError) {
        let pid = getpid()
        guard let start = startTime(pid) else { throw LauncherError(.failure, "cannot read /proc/self/stat") }
        let child = try spawnSelf(["__watch-detach", String(pid), start, String(interval)] + checkpointArguments, newSession: false)
        // ECHILD (SIGCHLD inherited as ignored: the kernel reaped it) tells nothing: go on, as before.
        guard ((try? ProcessControl.wait(child)) ?? 0) == 0 else {
            throw LauncherError(.failure, "cannot start the --interval watcher")
        }
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
                // In this process: the watcher is a `stasis` already, and its message below names the
                // periodic checkpoint.
                try CheckpointCommand.main(extra + [String(pid)])
            } catch {
                // Our stderr is the program's: a program that ended meanwhile gets no message there.
                if startTime(pid) != start { return 0 }
                printError("stasis: periodic checkpoint of \(pid) failed: \(error.message)")
            }
        }
    }
}
