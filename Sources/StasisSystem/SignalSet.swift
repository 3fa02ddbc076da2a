import Glibc

/// A set of signals (sigset_t) and the calls that take one.
public struct SignalSet: Sendable {
    public var raw = sigset_t()

    public init(_ signals: [CInt]) {
        sigemptyset(&raw)
        for signal in signals { sigaddset(&raw, signal) }
    }

    /// Adds the set to this thread's blocked signals. The corresponding C function is `sigprocmask(2)`.
    public func block() {
        var set = raw
        sigprocmask(SIG_BLOCK, &set, nil)  // fails only for a bad `how`
    }

    /// One pending signal of the set with its siginfo, waiting at most `timeout` seconds (nil: no limit).
    /// nil when the time ran out. EINTR is retried. The corresponding C functions are `sigwaitinfo(2)`
    /// and `sigtimedwait(2)`.
    public func wait(timeout: Int? = nil) throws(Errno) -> (signal: CInt, info: siginfo_t)? {
        var set = raw
        var info = siginfo_t()
        do {
            let signal = try valueOrErrno { () -> CInt in
                guard let timeout else { return sigwaitinfo(&set, &info) }
                var limit = timespec(tv_sec: timeout, tv_nsec: 0)
                return sigtimedwait(&set, &info, &limit)
            }
            return (signal, info)
        } catch where error == Errno(rawValue: EAGAIN) {
            return nil
        }
    }
}
