// FREEZE WINDOW: see RawSyscall.swift.
import StasisProc

/// Reads small /proc files whole into arena memory.
enum ProcFile {
    /// Reads `path` into `buffer` (NUL-terminated); returns the byte count or -errno.
    /// -E2BIG when the file does not fit.
    @_noAllocation @_noLocks
    static func read(_ path: UnsafePointer<CChar>, into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let fd = RawSyscall.open(path, RawFlag.readOnly | RawFlag.closeOnExec)
        if fd < 0 { return fd }
        var total = 0
        while true {
            guard total < capacity - 1 else {
                RawSyscall.close(Int32(fd))
                return -RawErrno.tooBig
            }
            let n = RawSyscall.read(Int32(fd), buffer + total, capacity - 1 - total)
            if n == -RawErrno.interrupted { continue }
            if n < 0 {
                RawSyscall.close(Int32(fd))
                return n
            }
            if n == 0 { break }
            total += n
        }
        RawSyscall.close(Int32(fd))
        buffer.storeBytes(of: 0, toByteOffset: total, as: UInt8.self)
        return total
    }

    @_noAllocation @_noLocks
    static func read(literal path: StaticString, into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        read(RawSyscall.cString(path), into: buffer, capacity: capacity)
    }
}

