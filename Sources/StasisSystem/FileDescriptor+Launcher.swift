import Glibc

// Descriptor calls the launcher makes beyond FileDescriptor.swift's: pipes, positioned writes,
// status flags. Each wraps one libc call; -1 becomes a typed Errno, EINTR is retried where the call
// may be repeated.
extension FileDescriptor {
    /// A pipe, both ends close-on-exec. The corresponding C functions are `pipe(2)` and
    /// `fcntl(F_SETFD)` (Glibc's module does not export pipe2; the launcher spawns nothing meanwhile).
    public static func pipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
        var ends: [CInt] = [-1, -1]
        _ = try valueOrErrno(retryOnInterrupt: false) { Glibc.pipe(&ends) }
        let pair = (read: FileDescriptor(rawValue: ends[0]), write: FileDescriptor(rawValue: ends[1]))
        do {
            _ = try valueOrErrno { fcntl(ends[0], F_SETFD, FD_CLOEXEC) }
            _ = try valueOrErrno { fcntl(ends[1], F_SETFD, FD_CLOEXEC) }
        } catch {
            pair.read.closeAfterError()
            pair.write.closeAfterError()
            throw error
        }
        return pair
    }

    /// Writes all of `bytes` at `offset` (the file position is not used).
    /// The corresponding C function is `pwrite(2)`, repeated until done.
    public func writeAll(_ bytes: [UInt8], at offset: UInt64) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let n = try valueOrErrno {
                bytes.withUnsafeBytes { raw in
                    Glibc.pwrite(rawValue, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                }
            }
            done += n
        }
    }

    /// Adds O_NONBLOCK to the status flags. The corresponding C function is `fcntl(F_SETFL)`.
    /// Like the call it replaces, this sets the flags to O_NONBLOCK alone (the launcher's own pipes
    /// have no others).
    public func setNonBlocking() throws(Errno) {
        _ = try valueOrErrno { fcntl(rawValue, F_SETFL, O_NONBLOCK) }
    }

    /// Waits until one of `fds` can be read (or is at end of file), at most `milliseconds`; which ones
    /// can. EINTR counts as none. The corresponding C function is `poll(2)`.
    public static func poll(_ fds: [FileDescriptor], milliseconds: CInt) -> [Bool] {
        var entries = fds.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
        let n = entries.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), milliseconds) }
        guard n > 0 else { return fds.map { _ in false } }
        return entries.map { $0.revents != 0 }
    }

    /// One byte, or nil at end of file. The corresponding C function is `read(2)`.
    public func readByte() throws(Errno) -> UInt8? {
        var byte: UInt8 = 0
        let n = try valueOrErrno { Glibc.read(rawValue, &byte, 1) }
        return n == 0 ? nil : byte
    }

    /// Whether this is a terminal. The corresponding C function is `isatty(3)` (it cannot fail).
    public var isTerminal: Bool { isatty(rawValue) != 0 }

    /// Sets the owner (uid only). The corresponding C function is `fchown(2)`.
    public func changeOwner(to uid: uid_t) throws(Errno) {
        _ = try valueOrErrno { fchown(rawValue, uid, gid_t(bitPattern: -1)) }
    }

    /// Writes `bytes` completely and closes, reporting a close error (the last chance to see a
    /// delayed write error): for files written on success paths. Closed on failure too.
    public func writeAllAndClose(_ bytes: [UInt8]) throws(Errno) {
        do {
            try writeAll(bytes)
        } catch {
            closeAfterError()
            throw error
        }
        try close()
    }
}
