import Glibc

/// An owned file descriptor number with typed-error operations (swift-system's `FileDescriptor`, trimmed).
public struct FileDescriptor: Hashable, Sendable {
    public let rawValue: CInt
    public init(rawValue: CInt) { self.rawValue = rawValue }

    /// The corresponding C function is `open(2)`; O_CLOEXEC is always added.
    public static func open(_ path: String, _ flags: CInt, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { Glibc.open(path, flags | O_CLOEXEC, mode) })
    }

    /// EINTR counts as closed and is never retried. The corresponding C function is `close(2)`.
    public func close() throws(Errno) {
        if Glibc.close(rawValue) == 0 { return }
        let error = Errno.current
        if error != .interrupted { throw error }
    }

    /// Closes after a primary error, dropping the close error: the primary one is what matters.
    public func closeAfterError() { _ = Glibc.close(rawValue) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try valueOrErrno { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try valueOrErrno { Glibc.pread(rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func writeAll(_ bytes: [UInt8]) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let n = try valueOrErrno {
                bytes.withUnsafeBytes { raw in Glibc.write(rawValue, raw.baseAddress! + done, raw.count - done) }
            }
            done += n
        }
    }

    /// One message on a datagram socket. The corresponding C function is `send(2)`.
    public func send(message bytes: [UInt8]) throws(Errno) {
        _ = try valueOrErrno { bytes.withUnsafeBytes { raw in Glibc.send(rawValue, raw.baseAddress, raw.count, 0) } }
    }

    public func seek(to offset: Int64) throws(Errno) {
        _ = try valueOrErrno { Glibc.lseek(rawValue, off_t(offset), SEEK_SET) }
    }

    /// A copy at the lowest free number >= `minimum`, close-on-exec. The corresponding call is `fcntl(F_DUPFD_CLOEXEC)`.
    public func duplicate(atLeast minimum: CInt) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { fcntl(rawValue, F_DUPFD_CLOEXEC, minimum) })
    }

    public func status() throws(Errno) -> stat {
        var st = stat()
        _ = try valueOrErrno { fstat(rawValue, &st) }
        return st
    }

    /// What a non-blocking descriptor holds now: to end of file, or until a read would block (what was
    /// read so far is kept, unlike `readAll`). Retries on EINTR.
    public func readAvailable() -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { raw in Glibc.read(rawValue, raw.baseAddress, raw.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return result }
            result += chunk[0..<n]
        }
    }

    /// Reads to end of file.
    public func readAll() throws(Errno) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try valueOrErrno { chunk.withUnsafeMutableBytes { raw in Glibc.read(rawValue, raw.baseAddress, raw.count) } }
            if n == 0 { return result }
            result += chunk[0..<n]
        }
    }
}

/// The contents of a (small) file, such as one under /proc.
public func readFile(_ path: String) throws(Errno) -> [UInt8] {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    defer { fd.closeAfterError() }
    return try fd.readAll()
}

/// stat(2) of a path, following symlinks.
public func fileStatus(_ path: String) throws(Errno) -> stat {
    var st = stat()
    _ = try valueOrErrno { stat(path, &st) }
    return st
}
