import CStasisSpawn
import Glibc

/// How a child ended, from a `waitpid` status word.
public enum ExitStatus: Equatable, Sendable {
    case exited(CInt)
    case signaled(CInt)

    public init(waitStatus: CInt) {
        self = waitStatus & 0x7f == 0 ? .exited((waitStatus >> 8) & 0xff) : .signaled(waitStatus & 0x7f)
    }
}

/// Process calls of the launcher (not `Process`: Foundation has one), one typed wrapper each.
public enum ProcessControl {
    /// Waits for `pid`; nil with `noHang` while it runs. EINTR is retried.
    /// The corresponding C function is `waitpid(2)`. The raw status word is returned for messages.
    /// With `stopped`, a child that stopped is reported too (WUNTRACED: test with `isStopped`).
    public static func wait(_ pid: pid_t, noHang: Bool = false, stopped: Bool = false) throws(Errno) -> CInt? {
        var status: CInt = 0
        let done = try valueOrErrno { waitpid(pid, &status, (noHang ? WNOHANG : 0) | (stopped ? WUNTRACED : 0)) }
        return done == 0 ? nil : status
    }

    /// Whether a `wait` status says the child stopped (WIFSTOPPED).
    public static func isStopped(_ waitStatus: CInt) -> Bool { waitStatus & 0xff == 0x7f }

    /// Reaps one child that has ended, unless it is one of `kept` (those are left for their own `wait`);
    /// its pid, or nil when there is none (or the next is kept). The corresponding C functions are
    /// `waitid(2)` (P_ALL, WNOWAIT: which one) and `waitpid(2)`.
    public static func reapOther(than kept: Set<pid_t>) -> pid_t? {
        var info = siginfo_t()
        guard waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT | __WALL) == 0 else { return nil }  // ECHILD: no children
        let pid = info._sifields._sigchld.si_pid
        guard pid > 0, !kept.contains(pid) else { return nil }
        var status: CInt = 0
        return waitpid(pid, &status, WNOHANG | __WALL) > 0 ? pid : nil
    }

    /// Makes `group` the foreground process group of terminal `fd` (the caller blocks SIGTTOU, or is
    /// in the foreground). The corresponding C function is `tcsetpgrp(3)`.
    public static func setForegroundGroup(_ group: pid_t, of fd: CInt) throws(Errno) {
        _ = try valueOrErrno { tcsetpgrp(fd, group) }
    }

    /// PR_SET_CHILD_SUBREAPER: orphaned descendants become this process's children. The corresponding C
    /// function is `prctl(2)`.
    public static func setChildSubreaper(_ on: Bool) throws(Errno) {
        let result = stasis_set_child_subreaper(on ? 1 : 0)  // prctl is variadic: not imported
        if result < 0 { throw Errno(rawValue: -result) }
    }

    /// Sends `signal` (0: only checks that `pid` exists and may be signalled).
    /// The corresponding C function is `kill(2)`.
    public static func send(_ signal: CInt, to pid: pid_t) throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: false) { kill(pid, signal) }
    }

    /// Queues `signal` with a pointer-sized value. The corresponding C function is `sigqueue(3)`.
    public static func queue(_ signal: CInt, to pid: pid_t, value: UInt64) throws(Errno) {
        var sv = sigval()
        sv.sival_ptr = UnsafeMutableRawPointer(bitPattern: UInt(value))
        _ = try valueOrErrno(retryOnInterrupt: false) { sigqueue(pid, signal, sv) }
    }

    /// Replaces this process with `program` (searched in PATH); returns only with the reason it failed.
    /// The corresponding C function is `execvp(3)`.
    public static func execute(_ program: String, arguments: [String]) -> Errno {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execvp(program, &argv)
        let error = Errno.current
        for pointer in argv { free(pointer) }
        return error
    }

    /// Dies of `signal` with its default action (so a parent sees the same end as a child's):
    /// unblocks it, resets its disposition and raises it. Returns only if the signal does not kill.
    public static func dieOfSignal(_ signal: CInt) {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        sigprocmask(SIG_UNBLOCK, &set, nil)
        Glibc.signal(signal, SIG_DFL)
        raise(signal)
    }

    /// This process's environment as "NAME=VALUE" entries.
    public static var environment: [String] {
        var result: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            result.append(String(cString: pointer))
            entry += 1
        }
        return result
    }

    /// One environment variable, or nil. The corresponding C function is `getenv(3)`.
    public static func environmentValue(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// Sets (or, with nil, removes) an environment variable. The corresponding C functions are
    /// `setenv(3)` and `unsetenv(3)`; both fail only for a malformed name or no memory.
    public static func setEnvironmentValue(_ name: String, _ value: String?) {
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
}

/// Seconds on CLOCK_MONOTONIC, for deadlines and intervals.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
