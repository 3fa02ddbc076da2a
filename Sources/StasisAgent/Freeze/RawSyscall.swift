// FREEZE WINDOW: reachable from the signal handler. No allocation, locks, Foundation, print,
// interpolation or untyped throws. Every call here is a single `syscall` instruction in
// CStasisABI/stasis_syscall.h, which the checker cannot see into: hence _unsafePerformance.
import CStasisABI

/// Raw system calls for the freeze window. Each returns the result or -errno and never touches `errno`.
enum RawSyscall {
    @_noAllocation @_noLocks @inline(__always)
    static func call(_ number: Int32, _ a1: Int = 0, _ a2: Int = 0, _ a3: Int = 0, _ a4: Int = 0,
                     _ a5: Int = 0, _ a6: Int = 0) -> Int {
        _unsafePerformance { stasis_syscall6(Int(number), a1, a2, a3, a4, a5, a6) }
    }

    @_noAllocation @_noLocks
    static func open(_ path: UnsafePointer<CChar>, _ flags: Int32, _ mode: UInt32 = 0) -> Int {
        call(STASIS_NR_open, Int(bitPattern: path), Int(flags), Int(mode))
    }

    /// A literal path. Swift emits string literals NUL-terminated.
    @_noAllocation @_noLocks
    static func open(literal path: StaticString, _ flags: Int32, _ mode: UInt32 = 0) -> Int {
        open(cString(path), flags, mode)
    }

    @_noAllocation @_noLocks
    static func cString(_ text: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    @_noAllocation @_noLocks
    static func close(_ fd: Int32) { _ = call(STASIS_NR_close, Int(fd)) }

    @_noAllocation @_noLocks
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        call(STASIS_NR_read, Int(fd), Int(bitPattern: buffer), count)
    }

    @_noAllocation @_noLocks
    static func write(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        call(STASIS_NR_write, Int(fd), Int(bitPattern: bytes), count)
    }

    /// Reads exactly `count` bytes, retrying on EINTR: 0, or -errno (-EINVAL if the file ends first).
    @_noAllocation @_noLocks
    static func readAll(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        var done = 0
        while done < count {
            let n = read(fd, buffer + done, count - done)
            if n == -RawErrno.interrupted { continue }
            if n <= 0 { return n < 0 ? n : -RawErrno.invalid }
            done += n
        }
        return 0
    }

    /// Writes all `count` bytes, retrying on EINTR: 0, or -errno (-ENOSPC if nothing more goes in).
    @_noAllocation @_noLocks
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        var done = 0
        while done < count {
            let n = write(fd, bytes + done, count - done)
            if n == -RawErrno.interrupted { continue }
            if n <= 0 { return n < 0 ? n : -RawErrno.noSpace }
            done += n
        }
        return 0
    }

    @_noAllocation @_noLocks
    static func readlink(_ path: UnsafePointer<CChar>, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        call(STASIS_NR_readlink, Int(bitPattern: path), Int(bitPattern: buffer), count)
    }

    @_noAllocation @_noLocks
    static func readlink(literal path: StaticString, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        readlink(cString(path), buffer, count)
    }

    /// PAGEMAP_SCAN on an open /proc/self/pagemap: regions found (or -errno); `arg.walk_end` says
    /// where the kernel stopped. Sets `arg.size`.
    @_noAllocation @_noLocks
    static func scanPages(_ pagemapFD: Int32, _ arg: inout stasis_pm_scan_arg_t) -> Int {
        arg.size = UInt64(MemoryLayout<stasis_pm_scan_arg_t>.size)
        return withUnsafeMutablePointer(to: &arg) { pointer in
            call(STASIS_NR_ioctl, Int(pagemapFD), Int(STASIS_PAGEMAP_SCAN), Int(bitPattern: pointer))
        }
    }
}

/// Errno values the freeze window names (Glibc is not imported here: its overlay pulls in locks).
enum RawErrno {
    static let interrupted = 4      // EINTR
    static let noEntry = 2          // ENOENT
    static let exists = 17          // EEXIST
    static let invalid = 22         // EINVAL
    static let noSpace = 28         // ENOSPC
    static let notSupported = 95    // EOPNOTSUPP
    static let tooBig = 7           // E2BIG
    static let noTTY = 25           // ENOTTY
}

/// struct flock for fcntl's open file description locks (F_OFD_*; l_pid must be 0).
struct FileLock {
    var type: Int16
    var whence: Int16 = 0
    var start: Int64 = 0
    var length: Int64 = 0  // 0: to the end of the file, however long it grows
    var pid: Int32 = 0
    static let write: Int16 = 1, unlocked: Int16 = 2  // F_WRLCK, F_UNLCK
    static let getOpenFileLock = 36, setOpenFileLock = 37  // F_OFD_GETLK, F_OFD_SETLK

    @_noAllocation @_noLocks
    init(type: Int16) { self.type = type }
}

/// Flags and numbers from the kernel ABI, spelled out for the same reason.
enum RawFlag {
    static let readOnly: Int32 = 0
    static let writeOnly: Int32 = 1
    static let readWrite: Int32 = 2
    static let create: Int32 = 0o100
    static let exclusive: Int32 = 0o200
    static let truncate: Int32 = 0o1000
    static let directory: Int32 = 0o200000
    static let noFollow: Int32 = 0o400000
    static let closeOnExec: Int32 = 0o2000000
    static let protRead = 1, protWrite = 2, protExec = 4
}

/// CLOCK_MONOTONIC in nanoseconds (checkpoint timings).
@_noAllocation @_noLocks
func monotonicNanoseconds() -> Int64 {
    var now: (Int64, Int64) = (0, 0)
    withUnsafeMutablePointer(to: &now) { pointer in
        _ = RawSyscall.call(STASIS_NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, Int(bitPattern: pointer))
    }
    return now.0 &* 1_000_000_000 &+ now.1
}
