// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// DELETED and MEMFD: the contents go in the image, as the record's page data.
extension FileDescriptorDumper {
    /// Deleted while open, O_TMPFILE, or memfd ("/memfd:NAME (deleted)"): object_id = the size,
    /// object_flags = a memfd's seals. Returns the bytes of contents to store as page data.
    @_noAllocation @_noLocks
    func captureDeletedFile(_ fd: Int32, _ st: stasis_kstat_t, isMemfd: Bool, into record: inout stasis_file_descriptor_record_t)
        throws(FreezeFailure) -> UInt64
    {
        record.kind = UInt32(isMemfd ? STASIS_FD_MEMFD : STASIS_FD_DELETED)
        record.object_id = UInt64(bitPattern: st.st_size)
        if isMemfd {
            let seals = RawSyscall.call(STASIS_NR_fcntl, Int(fd), 1034 /* F_GET_SEALS */)
            record.object_flags = seals > 0 ? UInt32(seals) : 0
        }
        guard st.st_size <= Self.maxSavedFileBytes else {
            throw FreezeFailure(step: .deletedFileTooLarge, errno: RawErrno.tooBig, object: Int(fd))
        }
        return UInt64(st.st_size)
    }

    static let maxSavedFileBytes: Int64 = 4 << 30

    /// A deleted file's contents, padded with zeros to the page: read with pread (the offset does not move)
    /// through the program's own fd when it can read, so a file another user (root) created and the
    /// program cannot open again is saved too; through a fresh read-only open of /proc/self/fd/N only
    /// for a write-only (or O_DIRECT) fd.
    @_noAllocation @_noLocks
    func copyContents(_ fd: Int32, bytes: UInt64, padded: UInt64, into image: inout ImageFile) throws(FreezeFailure) {
        let flags = RawSyscall.call(STASIS_NR_fcntl, Int(fd), 3 /* F_GETFL */)
        let readsItself = flags >= 0 && flags & 3 != 1 /* O_WRONLY */ && flags & 0o40000 /* O_DIRECT */ == 0
        var reader = Int(fd)
        if !readsItself {
            var path = TextBuffer(pathMemory, capacity: 64)
            path.append("/proc/self/fd/")
            path.append(decimal: Int(fd))
            reader = RawSyscall.open(path.cString, RawFlag.readOnly | RawFlag.closeOnExec)
            if reader < 0 { throw FreezeFailure(step: .readDeletedFile, errno: -reader, object: Int(fd)) }
        }
        defer { if !readsItself { RawSyscall.close(Int32(reader)) } }
        var done: UInt64 = 0
        let chunk = UInt64(Self.extraCapacity)
        while done < padded {
            let want = Int(min(chunk, padded - done))
            var got = 0
            if done < bytes {
                let n = RawSyscall.call(STASIS_NR_pread64, reader, Int(bitPattern: extraBuffer), min(want, Int(bytes - done)), Int(done))
                if n == -RawErrno.interrupted { continue }
                if n < 0 { throw FreezeFailure(step: .readDeletedFile, errno: -n, object: Int(fd)) }
                got = n
            }
            // Past the end (or if the file shrank meanwhile): zeros.
            for i in got..<want { extraBuffer.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
            try image.write(extraBuffer, want)
            done += UInt64(want)
        }
    }
}
