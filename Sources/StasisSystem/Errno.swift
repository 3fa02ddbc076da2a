import Glibc

/// An errno value as a typed error (swift-system's `Errno`, trimmed to what Stasis uses).
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: CInt
    public init(rawValue: CInt) { self.rawValue = rawValue }
    public static var current: Errno { Errno(rawValue: errno) }
    public static let interrupted = Errno(rawValue: EINTR)
    public static let noEntry = Errno(rawValue: ENOENT)
    public static let exists = Errno(rawValue: EEXIST)
    public static let permissionDenied = Errno(rawValue: EPERM)
    public static let noSuchProcess = Errno(rawValue: ESRCH)
    public var description: String { String(cString: strerror(rawValue)) }
}

/// Runs one libc call; -1 is thrown as `Errno`, EINTR retried. Out of line so nothing runs between
/// the call and the errno read.
@inline(never)
public func valueOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ body: () -> I) throws(Errno) -> I {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Errno.current
        if error == .interrupted && retryOnInterrupt { continue }
        throw error
    }
}
