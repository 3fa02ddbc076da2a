// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// The numeric entries of a /proc directory (thread ids in /proc/self/task or /proc/PID/task, fd
/// numbers in /proc/self/fd), read with getdents64 into a caller's buffer: the one walk of such a
/// directory (the freeze, the tree's children, the tree's descriptor lists).
struct TaskList {
    private let fd: Int32
    private let buffer: UnsafeMutableRawPointer
    private let capacity: Int
    private var filled = 0
    private var offset = 0

    /// Opens /proc/self/task; `buffer` (at least a few KiB) holds one getdents64 batch.
    @_noAllocation @_noLocks
    init(buffer: UnsafeMutableRawPointer, capacity: Int) throws(FreezeFailure) {
        try self.init(path: RawSyscall.cString("/proc/self/task"), buffer: buffer, capacity: capacity)
    }

    /// Opens the directory at `path` instead.
    @_noAllocation @_noLocks
    init(path: UnsafePointer<CChar>, buffer: UnsafeMutableRawPointer, capacity: Int) throws(FreezeFailure) {
        let fd = RawSyscall.open(path, RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if fd < 0 { throw FreezeFailure(step: .readProc, errno: -fd, object: -fd) }
        self.fd = Int32(fd)
        self.buffer = buffer
        self.capacity = capacity
    }

    /// The next thread id, nil at the end ("." and ".." are skipped).
    @_noAllocation @_noLocks
    mutating func next() throws(FreezeFailure) -> Int? {
        while true {
            if offset >= filled {
                let n = RawSyscall.call(STASIS_NR_getdents64, Int(fd), Int(bitPattern: buffer), capacity)
                if n < 0 { throw FreezeFailure(step: .readProc, errno: -n) }
                if n == 0 { return nil }
                filled = n
                offset = 0
            }
            let name = (buffer + offset + Int(STASIS_DIRENT64_NAME_OFFSET)).assumingMemoryBound(to: UInt8.self)
            offset += Int(buffer.load(fromByteOffset: offset + Int(STASIS_DIRENT64_RECLEN_OFFSET), as: UInt16.self))
            var cursor = ByteCursor(name, count: 12)
            if let tid = cursor.decimal(), cursor.current == 0 { return Int(tid) }
        }
    }

    @_noAllocation @_noLocks
    func close() { RawSyscall.close(fd) }

    /// The directory's own descriptor (a walk of /proc/self/fd sees it too).
    var descriptor: Int32 { fd }
}
