// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// PIPE and FIFO: a pipe's first record carries the bytes buffered in it, when the program reads it.
extension FileDescriptorDumper {
    /// PIPE: object_id = inode, object_flags = its size; the bytes in the first record of each pipe.
    @_noAllocation @_noLocks
    mutating func capturePipe(_ fd: Int32, _ st: stasis_kstat_t, into record: inout stasis_file_descriptor_record_t)
        throws(FreezeFailure) -> Int
    {
        record.kind = UInt32(STASIS_FD_PIPE)
        record.object_id = st.st_ino
        record.object_flags = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_fcntl, Int(fd), 1032 /* F_GETPIPE_SZ */))
        return hasSeenPipe(fd, st) ? 0 : try capturePipeBytes(fd, reader: pipeReader(st.st_dev, st.st_ino))
    }

    /// FIFO: object_id = inode; the bytes in the first record of each FIFO.
    @_noAllocation @_noLocks
    mutating func captureFIFO(_ fd: Int32, _ st: stasis_kstat_t, into record: inout stasis_file_descriptor_record_t)
        throws(FreezeFailure) -> Int
    {
        record.kind = UInt32(STASIS_FD_FIFO)
        record.object_id = st.st_ino
        return hasSeenPipe(fd, st) ? 0 : try capturePipeBytes(fd, reader: pipeReader(st.st_dev, st.st_ino))
    }

    /// Whether an earlier PIPE or FIFO record has this pipe (its bytes go in the first); marks this one.
    /// The fds of one pipe are adjacent in the sorted entries (DescriptionIndex.swift).
    @_noAllocation @_noLocks
    func hasSeenPipe(_ fd: Int32, _ st: stasis_kstat_t) -> Bool {
        guard let entries, let slotFlags else { return false }
        var seen = false
        for i in self.entries(device: st.st_dev, inode: st.st_ino) where slotFlags[Int(entries[i].slot)] & Self.pipeWrittenFlag != 0 {
            seen = true
        }
        if let slot = slot(of: fd) { slotFlags[slot] |= Self.pipeWrittenFlag }
        return seen
    }

    /// Pre-pass over /proc/self/fd: every descriptor's entry for the shared-description search, marked
    /// when it is a pipe or FIFO the program can read through it. Only a pipe the program reads holds bytes the program would lose; bytes in a pipe whose
    /// reader is outside belong to that reader (it still gets them when the program is killed).
    @_noAllocation @_noLocks
    mutating func findPipeReaders(dirFD: Int32, excluding excluded: Int32, and agentOwn: Int32, lock: Int32) throws(FreezeFailure) {
        ptySlaveCount = 0
        let pid = Int32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getpid))
        while true {
            let n = RawSyscall.call(STASIS_NR_getdents64, Int(dirFD), Int(bitPattern: directoryBuffer), Self.directoryCapacity)
            if n < 0 { throw FreezeFailure(step: .readProc, errno: -n) }
            if n == 0 { return }
            var offset = 0
            while offset < n {
                let entry = directoryBuffer + offset
                offset += Int(entry.load(fromByteOffset: 16, as: UInt16.self))
                var cursor = ByteCursor((entry + 19).assumingMemoryBound(to: UInt8.self), count: 12)
                guard let number = cursor.decimal(), cursor.current == 0 else { continue }
                let fd = Int32(number)
                if fd == excluded || fd == agentOwn || fd == lock || fd == dirFD { continue }
                var st = stasis_kstat_t()
                let r = withUnsafeMutablePointer(to: &st) { RawSyscall.call(STASIS_NR_fstat, Int(fd), Int(bitPattern: $0)) }
                guard r == 0 else { continue }
                let slot = try addEntry(fd, st, pid: pid)
                if st.st_mode & UInt32(STASIS_S_IFMT) == UInt32(STASIS_S_IFCHR) {
                    // Unix98 pty slaves: majors 136-143 (st_rdev as the kernel encodes it for stat).
                    let major = (st.st_rdev >> 8) & 0xfff, minor = (st.st_rdev & 0xff) | ((st.st_rdev >> 12) & 0xfff00)
                    if major >= 136 && major <= 143 && ptySlaveCount < Self.ptySlaveCapacity {
                        ptySlaves[2 * ptySlaveCount] = Int32(truncatingIfNeeded: (major - 136) * 256 + minor)
                        ptySlaves[2 * ptySlaveCount + 1] = fd
                        ptySlaveCount += 1
                    }
                    continue
                }
                guard st.st_mode & UInt32(STASIS_S_IFMT) == Self.fifoType else { continue }
                let access = RawSyscall.call(STASIS_NR_fcntl, Int(fd), 3 /* F_GETFL */) & 3
                guard access == 0 /* O_RDONLY */ || access == 2 /* O_RDWR */ else { continue }
                slotFlags?[slot] |= Self.readableFlag
            }
        }
    }

    /// The lowest descriptor through which the program reads this pipe or FIFO, or -1 if it only writes it.
    @_noAllocation @_noLocks
    func pipeReader(_ device: UInt64, _ inode: UInt64) -> Int32 {
        guard let entries, let slotFlags else { return -1 }
        var reader: Int32 = -1
        for i in self.entries(device: device, inode: inode) where slotFlags[Int(entries[i].slot)] & Self.readableFlag != 0 {
            if reader < 0 || entries[i].fd < reader { reader = entries[i].fd }
        }
        return reader
    }

    /// The bytes buffered in a pipe or FIFO the program reads through `reader` (none when it only writes
    /// it: see findPipeReaders), duplicated without being consumed: tee(2) into a private pipe as large as
    /// the program's, then read from that one. The program's own descriptor is used, never a reopen of
    /// /proc/self/fd/N, so a pipe another user (root) created is read as the program itself reads it.
    /// Every thread is frozen, so nobody reads or writes meanwhile.
    @_noAllocation @_noLocks
    func capturePipeBytes(_ fd: Int32, reader: Int32) throws(FreezeFailure) -> Int {
        if reader < 0 { return 0 }
        var pending: Int32 = 0
        let asked = withUnsafeMutablePointer(to: &pending) { pointer in
            RawSyscall.call(STASIS_NR_ioctl, Int(reader), 0x541B /* FIONREAD */, Int(bitPattern: pointer))
        }
        if asked < 0 { throw FreezeFailure(step: .readPipe, errno: -asked, object: Int(fd)) }
        let count = Int(pending)
        if count == 0 { return 0 }
        guard count <= Self.extraCapacity else { throw FreezeFailure(step: .readPipe, errno: RawErrno.tooBig, object: Int(fd)) }
        var ends: (Int32, Int32) = (-1, -1)
        let made = withUnsafeMutablePointer(to: &ends) { pointer in
            RawSyscall.call(STASIS_NR_pipe2, Int(bitPattern: pointer), 0o2000000 | 0o4000 /* O_CLOEXEC | O_NONBLOCK */)
        }
        if made < 0 { throw FreezeFailure(step: .readPipe, errno: -made, object: Int(fd)) }
        defer {
            RawSyscall.close(ends.0)
            RawSyscall.close(ends.1)
        }
        // Room for every buffer of the program's pipe (tee copies buffers, one slot each); an ordinary
        // user may go up to 1 MiB, enough for the bytes of any pipe such a user could have made.
        let size = RawSyscall.call(STASIS_NR_fcntl, Int(reader), 1032 /* F_GETPIPE_SZ */)
        let wanted = min(max(size, count), Self.extraCapacity)
        if RawSyscall.call(STASIS_NR_fcntl, Int(ends.1), 1031 /* F_SETPIPE_SZ */, wanted) < 0 {
            _ = RawSyscall.call(STASIS_NR_fcntl, Int(ends.1), 1031 /* F_SETPIPE_SZ */, count)
        }
        var copied = RawSyscall.call(STASIS_NR_tee, Int(reader), Int(ends.1), count, 2 /* SPLICE_F_NONBLOCK */)
        while copied == -RawErrno.interrupted {
            copied = RawSyscall.call(STASIS_NR_tee, Int(reader), Int(ends.1), count, 2 /* SPLICE_F_NONBLOCK */)
        }
        if copied < 0 { throw FreezeFailure(step: .readPipe, errno: -copied, object: Int(fd)) }
        if copied < count { throw FreezeFailure(step: .readPipe, errno: RawErrno.tooBig, object: Int(fd)) }
        let got = RawSyscall.readAll(ends.0, extraBuffer, count)
        if got < 0 { throw FreezeFailure(step: .readPipe, errno: -got, object: Int(fd)) }
        return count
    }
}
