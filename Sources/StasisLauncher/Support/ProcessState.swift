import Glibc
import StasisSystem

// What /proc says about another process: whether it is still there, and since when.

/// The fields of /proc/PID/stat after the command name (field 3, the state, first); nil once the
/// process is gone. The name is skipped by its last ')' since it may hold spaces and parentheses.
func statFields(_ pid: pid_t) -> [Substring]? {
    guard let stat = try? readFile("/proc/\(pid)/stat") else { return nil }  // ENOENT/ESRCH: gone
    return statFields(parsing: String(decoding: stat, as: UTF8.self))
}

/// The fields of a /proc/PID/stat line after the command name; nil without one.
func statFields(parsing text: String) -> [Substring]? {
    guard let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(after: close)...].split(separator: " ")
}

/// The process's start time (field 22 of /proc/PID/stat): a reused PID has another. Nil once it
/// is gone, and also while it is a zombie (killed, not yet reaped by its parent): it has no memory
/// left to checkpoint, and its PID and start time stay until the reap.
func startTime(_ pid: pid_t) -> String? {
    guard let fields = statFields(pid), fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
    return String(fields[19])
}

/// Gone, or a zombie (which `kill(pid, 0)` still finds): it will never answer.
func hasExited(_ pid: pid_t) -> Bool {
    do {
        try ProcessControl.send(0, to: pid)
    } catch where error == .noSuchProcess {
        return true
    } catch {
        // EPERM: it exists but is another user's; /proc below decides.
    }
    guard let stat = try? readFile("/proc/\(pid)/stat") else { return true }  // gone meanwhile
    guard let fields = statFields(parsing: String(decoding: stat, as: UTF8.self)) else { return false }
    let state = fields.first?.first
    return state == "Z" || state == "X"
}

/// Seconds since PID started (field 22 of /proc/PID/stat, against /proc/uptime); nil if unknown.
func processAge(_ pid: pid_t) -> Double? {
    guard let fields = statFields(pid), let uptime = try? readFile("/proc/uptime") else { return nil }  // gone
    guard fields.count > 19, let ticks = Double(fields[19]),
        let up = Double(String(decoding: uptime, as: UTF8.self).split(separator: " ").first ?? "")
    else { return nil }
    return up - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Seconds on the monotonic clock.
func now() -> Double { monotonicSeconds() }

/// `pid`'s children, from /proc/PID/task/TID/children of each of its threads (empty when it is gone).
func childrenOf(_ pid: pid_t) -> [pid_t] {
    guard let tasks = try? FileSystem.directoryEntries("/proc/\(pid)/task") else { return [] }
    var result: [pid_t] = []
    for task in tasks {
        guard let text = try? readFile("/proc/\(pid)/task/\(task)/children") else { continue }  // a thread that ended
        result += String(decoding: text, as: UTF8.self).split(separator: " ").compactMap { pid_t($0.filter(\.isNumber)) }
    }
    return result
}

/// SIGKILL to every child of this process, reaped, until there is none left (orphans keep arriving while
/// their parents die: a child subreaper's), or `seconds` have passed.
func killAndReapChildren(seconds: Double) {
    let deadline = monotonicSeconds() + seconds
    while monotonicSeconds() < deadline {
        for child in childrenOf(getpid()) { try? ProcessControl.send(SIGKILL, to: child) }  // ESRCH: just ended
        var status: Int32 = 0
        while waitpid(-1, &status, WNOHANG | __WALL) > 0 {}
        if errno == ECHILD && childrenOf(getpid()).isEmpty { return }
        usleep(2000)
    }
}
