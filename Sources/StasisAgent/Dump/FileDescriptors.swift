// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// Open descriptors, from /proc/self/fd. Regular files and stateless devices are reopened by path at
/// restart; fds 0-2 on anything else (a terminal, a pipe) take restart's own. Anything else is not
/// supported yet: the checkpoint fails naming the fd, and the program keeps running.
struct FileDescriptorDumper {
    let directoryBuffer: UnsafeMutableRawPointer
    let linkBuffer: UnsafeMutableRawPointer
    let pathMemory: UnsafeMutableRawPointer
    static let directoryCapacity = 64 * 1024

    @_noAllocation @_noLocks
    static func make(arena: inout FreezeArena) -> FileDescriptorDumper? {
        guard let directory = arena.take(directoryCapacity), let link = arena.take(Int(STASIS_MAX_PATH)),
            let path = arena.take(64)
        else { return nil }
        return FileDescriptorDumper(directoryBuffer: directory, linkBuffer: link, pathMemory: path)
    }

    /// Writes one record per descriptor except `excluded` (the image being written).
    @_noAllocation @_noLocks
    mutating func dump(excluding excluded: Int32, into image: inout ImageFile) throws(FreezeFailure) {
        let dirFD = RawSyscall.open(literal: "/proc/self/fd", RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if dirFD < 0 { throw FreezeFailure(step: .readProc, errno: -dirFD) }
        defer { RawSyscall.close(Int32(dirFD)) }
        while true {
            let n = RawSyscall.call(STASIS_NR_getdents64, dirFD, Int(bitPattern: directoryBuffer),
                                    Self.directoryCapacity)
            if n < 0 { throw FreezeFailure(step: .readProc, errno: -n) }
            if n == 0 { break }
            var offset = 0
            while offset < n {
                let entry = directoryBuffer + offset
                let recordLength = Int(entry.load(fromByteOffset: 16, as: UInt16.self))
                let name = (entry + 19).assumingMemoryBound(to: UInt8.self)
                offset += recordLength
                var cursor = ByteCursor(name, count: 12)
                guard let number = cursor.decimal(), cursor.current == 0 else { continue }  // "." and ".."
                let fd = Int32(number)
                if fd == excluded || fd == Int32(dirFD) { continue }
                try dumpOne(fd, into: &image)
            }
        }
    }

    @_noAllocation @_noLocks
    private mutating func dumpOne(_ fd: Int32, into image: inout ImageFile) throws(FreezeFailure) {
        var path = TextBuffer(pathMemory, capacity: 64)
        path.append("/proc/self/fd/")
        path.append(decimal: Int(fd))
        let linkCount = RawSyscall.readlink(path.cString, linkBuffer, Int(STASIS_MAX_PATH) - 1)
        if linkCount < 0 { throw FreezeFailure(step: .readProc, errno: -linkCount, object: Int(fd)) }
        let link = linkBuffer.assumingMemoryBound(to: UInt8.self)
        link[linkCount] = 0

        var st = stasis_kstat_t()
        let statResult = withUnsafeMutablePointer(to: &st) { pointer in
            RawSyscall.call(STASIS_NR_fstat, Int(fd), Int(bitPattern: pointer))
        }
        if statResult < 0 { throw FreezeFailure(step: .readProc, errno: -statResult, object: Int(fd)) }

        var record = stasis_file_descriptor_record_t()
        record.fd = fd
        record.status_flags = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_fcntl, Int(fd), 3 /* F_GETFL */))
        record.fd_flags = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_fcntl, Int(fd), 1 /* F_GETFD */))
        record.offset = Int64(RawSyscall.call(STASIS_NR_lseek, Int(fd), 0, 1 /* SEEK_CUR */))
        if record.offset < 0 { record.offset = -1 }
        record.device = st.st_dev
        record.inode = st.st_ino
        record.size = UInt64(bitPattern: st.st_size)
        record.mtime_ns = st.st_mtime_sec &* 1_000_000_000 &+ st.st_mtime_nsec
        record.mode = st.st_mode

        let type = st.st_mode & UInt32(STASIS_S_IFMT)
        let isDeleted = endsWith(link, linkCount, " (deleted)")
        if type == UInt32(STASIS_S_IFREG) && link[0] == UInt8(ascii: "/") && !isDeleted {
            record.kind = UInt32(STASIS_FD_REGULAR)
        } else if type == UInt32(STASIS_S_IFCHR) && isStatelessDevice(link, linkCount) {
            record.kind = UInt32(STASIS_FD_DEVICE)
        } else if fd <= 2 {
            record.kind = UInt32(STASIS_FD_INHERIT)
        } else {
            throw FreezeFailure(step: .unsupportedFile, errno: RawErrno.notSupported, object: Int(fd))
        }
        record.path_bytes = UInt32(linkCount)
        try image.writeRecord(kind: UInt32(STASIS_RECORD_FILE_DESCRIPTOR), fixed: &record, fixedBytes: MemoryLayout<stasis_file_descriptor_record_t>.size,
                              tail: linkBuffer, tailBytes: linkCount)
    }

    @_noAllocation @_noLocks
    private func isStatelessDevice(_ link: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        linkEquals(link, count, "/dev/null") || linkEquals(link, count, "/dev/zero")
            || linkEquals(link, count, "/dev/full") || linkEquals(link, count, "/dev/random")
            || linkEquals(link, count, "/dev/urandom")
    }
}

@_noAllocation @_noLocks
func linkEquals(_ bytes: UnsafePointer<UInt8>, _ count: Int, _ text: StaticString) -> Bool {
    guard count == text.utf8CodeUnitCount else { return false }
    return endsWith(bytes, count, text)
}
