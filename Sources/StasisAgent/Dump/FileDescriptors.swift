// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// Open descriptors, from /proc/self/fd. Regular files, directories and stateless devices are reopened
/// by path at restart; pipes (with their buffered bytes), eventfds and epoll instances are recreated;
/// terminals are replaced by restart's own with the saved modes; fds 0-2 on anything else (a socket)
/// take restart's own. Anything else is not supported
/// yet: the checkpoint fails naming the fd, and the program keeps running.
struct FileDescriptorDumper {
    let directoryBuffer: UnsafeMutableRawPointer
    let linkBuffer: UnsafeMutableRawPointer
    let pathMemory: UnsafeMutableRawPointer
    let infoBuffer: UnsafeMutableRawPointer   // /proc/self/fdinfo/N text
    let extraBuffer: UnsafeMutableRawPointer  // pipe bytes or epoll entries for one record
    let seenPipes: UnsafeMutablePointer<UInt64>
    var seenPipeCount = 0
    var skipUnsupported = false
    /// Descriptors written so far, with their inode, to find dup'ed ones (same open file description).
    /// UNIX socket inode → peer inode pairs (sock_diag), read when the first UNIX socket is met.
    let peerTable: UnsafeMutablePointer<UInt32>
    var peerCount = -1
    static let peerCapacity = 65536
    let dumpedFDs: UnsafeMutablePointer<Int32>
    let dumpedInodes: UnsafeMutablePointer<UInt64>
    var dumpedCount = 0
    /// Pipes and FIFOs the program can read: (device, inode) → one of its fds with read access (pre-pass).
    let readerKeys: UnsafeMutablePointer<UInt64>
    let readerFDs: UnsafeMutablePointer<Int32>
    var readerCount = 0
    /// Pseudo-terminal slaves the program holds: (pty number, one of its fds), from the same pre-pass.
    let ptySlaves: UnsafeMutablePointer<Int32>
    var ptySlaveCount = 0
    static let ptySlaveCapacity = 256
    static let dumpedCapacity = 65536
    static let directoryCapacity = 64 * 1024
    static let infoCapacity = 256 * 1024
    static let extraCapacity = 1 << 20  // the largest pipe buffer an unprivileged user may set
    static let pipeCapacity = 4096

    @_noAllocation @_noLocks
    static func make(arena: inout FreezeArena) -> FileDescriptorDumper? {
        guard let directory = arena.take(directoryCapacity), let link = arena.take(Int(STASIS_MAX_PATH)),
            let path = arena.take(64), let info = arena.take(infoCapacity), let extra = arena.take(extraCapacity),
            let pipes = arena.take(pipeCapacity * 8), let fds = arena.take(dumpedCapacity * 4),
            let inodes = arena.take(dumpedCapacity * 8), let peers = arena.take(peerCapacity * 8),
            let readerKeys = arena.take(pipeCapacity * 16), let readerFDs = arena.take(pipeCapacity * 4),
            let slaves = arena.take(ptySlaveCapacity * 8)
        else { return nil }
        return FileDescriptorDumper(directoryBuffer: directory, linkBuffer: link, pathMemory: path, infoBuffer: info,
                                    extraBuffer: extra, seenPipes: pipes.assumingMemoryBound(to: UInt64.self),
                                    peerTable: peers.assumingMemoryBound(to: UInt32.self),
                                    dumpedFDs: fds.assumingMemoryBound(to: Int32.self),
                                    dumpedInodes: inodes.assumingMemoryBound(to: UInt64.self),
                                    readerKeys: readerKeys.assumingMemoryBound(to: UInt64.self),
                                    readerFDs: readerFDs.assumingMemoryBound(to: Int32.self),
                                    ptySlaves: slaves.assumingMemoryBound(to: Int32.self))
    }

    /// Writes one record per descriptor except `excluded` (the image being written) and `agentOwn`
    /// (the dirty-page tracker's userfaultfd, or -1).
    @_noAllocation @_noLocks
    mutating func dump(excluding excluded: Int32, and agentOwn: Int32, into image: inout ImageFile) throws(FreezeFailure) {
        let dirFD = RawSyscall.open(literal: "/proc/self/fd", RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if dirFD < 0 { throw FreezeFailure(step: .readProc, errno: -dirFD) }
        defer { RawSyscall.close(Int32(dirFD)) }
        try findPipeReaders(dirFD: Int32(dirFD), excluding: excluded, and: agentOwn)
        _ = RawSyscall.call(STASIS_NR_lseek, dirFD, 0, 0 /* SEEK_SET */)
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
                if fd == excluded || fd == agentOwn || fd == Int32(dirFD) { continue }
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
        var extraBytes = 0
        var contentBytes: UInt64 = 0  // a deleted file's or memfd's contents, stored as page data
        if type == UInt32(STASIS_S_IFREG) && link[0] == UInt8(ascii: "/") && !isDeleted {
            record.kind = UInt32(STASIS_FD_REGULAR)
        } else if type == UInt32(STASIS_S_IFCHR) && isStatelessDevice(link, linkCount) {
            record.kind = UInt32(STASIS_FD_DEVICE)
        } else if type == UInt32(STASIS_S_IFREG) && isDeleted && (link[0] == UInt8(ascii: "/")) {
            // Deleted while open, O_TMPFILE, or memfd ("/memfd:NAME (deleted)"): the contents go in the image.
            let isMemfd = startsWith(link, linkCount, "/memfd:")
            record.kind = UInt32(isMemfd ? STASIS_FD_MEMFD : STASIS_FD_DELETED)
            record.object_id = UInt64(bitPattern: st.st_size)
            if isMemfd {
                let seals = RawSyscall.call(STASIS_NR_fcntl, Int(fd), 1034 /* F_GET_SEALS */)
                record.object_flags = seals > 0 ? UInt32(seals) : 0
            }
            guard st.st_size <= Self.maxSavedFileBytes else {
                throw FreezeFailure(step: .deletedFileTooLarge, errno: RawErrno.tooBig, object: Int(fd))
            }
            contentBytes = UInt64(st.st_size)
        } else if type == UInt32(STASIS_S_IFDIR) && link[0] == UInt8(ascii: "/") && !isDeleted {
            record.kind = UInt32(STASIS_FD_DIRECTORY)
        } else if type == 0o010000 /* S_IFIFO */ && startsWith(link, linkCount, "pipe:[") && fd > 2 {
            // (A pipe at fd 0-2 is a pipeline's: INHERIT gives it restart's own, below.)
            record.kind = UInt32(STASIS_FD_PIPE)
            record.object_id = st.st_ino
            record.object_flags = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_fcntl, Int(fd), 1032 /* F_GETPIPE_SZ */))
            if !hasSeenPipe(st.st_ino) { extraBytes = try capturePipeBytes(fd, reader: pipeReader(st.st_dev, st.st_ino)) }
        } else if linkEquals(link, linkCount, "anon_inode:[eventfd]") {
            record.kind = UInt32(STASIS_FD_EVENTFD)
            let info = try readInfo(fd)
            record.object_id = info.hexField("eventfd-count:") ?? 0
            record.object_flags = info.hexField("eventfd-semaphore:") == 1 ? STASIS_EVENTFD_SEMAPHORE : 0
        } else if linkEquals(link, linkCount, "anon_inode:[timerfd]") {
            record.kind = UInt32(STASIS_FD_TIMERFD)
            // A periodic timer that expired and was not read is not re-armed by the kernel until the
            // next read or timerfd_gettime (only `ticks` was bumped, once): fdinfo then shows it_value 0
            // and one tick. timerfd_gettime forwards it, adds the missed expirations to the unread count
            // and re-arms it, without consuming anything; fdinfo is read after it.
            var now: (Int64, Int64, Int64, Int64) = (0, 0, 0, 0)
            _ = withUnsafeMutablePointer(to: &now) { RawSyscall.call(287 /* timerfd_gettime */, Int(fd), Int(bitPattern: $0)) }
            let info = try readInfo(fd)
            record.object_id = info.decimalField("clockid:") ?? 1
            var timer = stasis_timerfd_state_t()
            timer.ticks = info.decimalField("ticks:") ?? 0
            (timer.value_sec, timer.value_nsec) = info.pairField("it_value:") ?? (0, 0)
            (timer.interval_sec, timer.interval_nsec) = info.pairField("it_interval:") ?? (0, 0)
            extraBuffer.storeBytes(of: timer, as: stasis_timerfd_state_t.self)
            extraBytes = MemoryLayout<stasis_timerfd_state_t>.size
        } else if linkEquals(link, linkCount, "anon_inode:inotify") {
            record.kind = UInt32(STASIS_FD_INOTIFY)
            let info = try readInfo(fd)
            extraBytes = min(info.count, Self.extraCapacity)
            for i in 0..<extraBytes { extraBuffer.storeBytes(of: info.text[i], toByteOffset: i, as: UInt8.self) }
        } else if linkEquals(link, linkCount, "anon_inode:[signalfd]") {
            record.kind = UInt32(STASIS_FD_SIGNALFD)
            record.object_id = try readInfo(fd).hexField("sigmask:") ?? 0
        } else if linkEquals(link, linkCount, "anon_inode:[eventpoll]") {
            record.kind = UInt32(STASIS_FD_EPOLL)
            extraBytes = try captureEpollEntries(fd)
        } else if type == 0o010000 /* S_IFIFO */ && link[0] == UInt8(ascii: "/") && !isDeleted && fd > 2 {
            record.kind = UInt32(STASIS_FD_FIFO)
            record.object_id = st.st_ino
            if !hasSeenPipe(st.st_ino) { extraBytes = try capturePipeBytes(fd, reader: pipeReader(st.st_dev, st.st_ino)) }
        } else if type == 0o140000 /* S_IFSOCK */ && fd > 2 {
            // Listening sockets are re-created; any other socket comes back with its peer gone.
            extraBytes = captureSocket(fd)
            record.object_id = st.st_ino
            let listening = socketIsListening(fd)
            record.kind = UInt32(listening ? STASIS_FD_SOCKET_LISTEN : STASIS_FD_SOCKET_RESET)
            let state = extraBuffer.assumingMemoryBound(to: stasis_socket_state_t.self)
            if listening && (state.pointee.domain == 2 || state.pointee.domain == 10) /* AF_INET, AF_INET6 */ {
                let backlog = tcpListenBacklog(fd)  // 0 for anything but TCP
                if backlog > 0 {
                    extraBuffer.storeBytes(of: backlog, toByteOffset: extraBytes, as: UInt32.self)
                    extraBytes += 4
                }
            }
            if !listening && state.pointee.domain == 1 /* AF_UNIX */ {
                state.pointee.peer_inode = try unixPeer(of: UInt32(truncatingIfNeeded: st.st_ino))
                if state.pointee.type == 1 /* SOCK_STREAM */ { extraBytes += peekQueued(fd, at: extraBytes) }
                if state.pointee.type == 2 /* SOCK_DGRAM */ { extraBytes += peekDatagrams(fd, at: extraBytes) }
            }
        } else if type == UInt32(STASIS_S_IFCHR) && (linkEquals(link, linkCount, "/dev/ptmx")
            || linkEquals(link, linkCount, "/dev/pts/ptmx")) && isTerminal(fd)
        {
            record.kind = UInt32(STASIS_FD_PTY_MASTER)  // termios in extraBuffer (isTerminal), winsize after it
            var number: UInt32 = 0
            _ = withUnsafeMutablePointer(to: &number) { n in
                RawSyscall.call(STASIS_NR_ioctl, Int(fd), 0x8004_5430 /* TIOCGPTN */, Int(bitPattern: n))
            }
            record.object_id = UInt64(number)
            _ = RawSyscall.call(STASIS_NR_ioctl, Int(fd), 0x5413 /* TIOCGWINSZ */, Int(bitPattern: extraBuffer + 36))
            extraBytes = 44 + captureTerminalQueues(master: fd, number: number)
        } else if type == UInt32(STASIS_S_IFCHR) && isTerminal(fd) {
            record.kind = UInt32(STASIS_FD_TERMINAL)  // the modes are in extraBuffer (isTerminal)
            extraBytes = Int(STASIS_TERMIOS_BYTES)
        } else if fd <= 2 {
            record.kind = UInt32(STASIS_FD_INHERIT)
        } else if skipUnsupported {
            record.kind = UInt32(STASIS_FD_UNSUPPORTED)
        } else {
            throw FreezeFailure(step: .unsupportedFile, errno: RawErrno.notSupported, object: Int(fd))
        }
        record.path_bytes = UInt32(linkCount)
        record.extra_bytes = UInt32(extraBytes)
        record.shares_with = sharedDescription(fd, inode: st.st_ino)
        if dumpedCount < Self.dumpedCapacity {
            dumpedFDs[dumpedCount] = fd
            dumpedInodes[dumpedCount] = st.st_ino
            dumpedCount += 1
        }
        let fixedBytes = MemoryLayout<stasis_file_descriptor_record_t>.size
        let page = UInt64(STASIS_PAGE_SIZE)
        let dataBytes = (contentBytes + page - 1) / page * page
        try image.beginRecord(kind: UInt32(STASIS_RECORD_FILE_DESCRIPTOR), payloadBytes: fixedBytes + linkCount + extraBytes,
                              dataBytes: dataBytes)
        try image.write(&record, fixedBytes)
        try image.write(linkBuffer, linkCount)
        if extraBytes > 0 { try image.write(extraBuffer, extraBytes) }
        try image.endPayload()
        if dataBytes > 0 { try copyContents(fd, bytes: contentBytes, padded: dataBytes, into: &image) }
        try image.endRecord()
    }

    /// An earlier descriptor with the same open file description (kcmp KCMP_FILE), or -1: dup'ed fds
    /// share one offset, and restart must give them one description again.
    @_noAllocation @_noLocks
    private func sharedDescription(_ fd: Int32, inode: UInt64) -> Int32 {
        let pid = RawSyscall.call(STASIS_NR_getpid)
        for i in 0..<dumpedCount where dumpedInodes[i] == inode {
            if RawSyscall.call(STASIS_NR_kcmp, pid, pid, 0 /* KCMP_FILE */, Int(dumpedFDs[i]), Int(fd)) == 0 {
                return dumpedFDs[i]
            }
        }
        return -1
    }

    @_noAllocation @_noLocks
    private mutating func hasSeenPipe(_ inode: UInt64) -> Bool {
        for i in 0..<seenPipeCount where seenPipes[i] == inode { return true }
        if seenPipeCount < Self.pipeCapacity {
            seenPipes[seenPipeCount] = inode
            seenPipeCount += 1
        }
        return false
    }

    /// Pre-pass over /proc/self/fd: for every pipe and FIFO, one descriptor the program can read it
    /// through. Only a pipe the program reads holds bytes the program would lose; bytes in a pipe whose
    /// reader is outside belong to that reader (it still gets them when the program is killed).
    @_noAllocation @_noLocks
    private mutating func findPipeReaders(dirFD: Int32, excluding excluded: Int32, and agentOwn: Int32) throws(FreezeFailure) {
        readerCount = 0
        ptySlaveCount = 0
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
                if fd == excluded || fd == agentOwn || fd == dirFD { continue }
                var st = stasis_kstat_t()
                let r = withUnsafeMutablePointer(to: &st) { RawSyscall.call(STASIS_NR_fstat, Int(fd), Int(bitPattern: $0)) }
                guard r == 0 else { continue }
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
                guard st.st_mode & UInt32(STASIS_S_IFMT) == 0o010000 /* S_IFIFO */ else { continue }
                let access = RawSyscall.call(STASIS_NR_fcntl, Int(fd), 3 /* F_GETFL */) & 3
                guard access == 0 /* O_RDONLY */ || access == 2 /* O_RDWR */ else { continue }
                if pipeReader(st.st_dev, st.st_ino) >= 0 || readerCount >= Self.pipeCapacity { continue }
                readerKeys[2 * readerCount] = st.st_dev
                readerKeys[2 * readerCount + 1] = st.st_ino
                readerFDs[readerCount] = fd
                readerCount += 1
            }
        }
    }

    /// A descriptor through which the program reads this pipe or FIFO, or -1 if it only writes it.
    @_noAllocation @_noLocks
    private func pipeReader(_ device: UInt64, _ inode: UInt64) -> Int32 {
        for i in 0..<readerCount where readerKeys[2 * i + 1] == inode && readerKeys[2 * i] == device { return readerFDs[i] }
        return -1
    }

    /// The bytes buffered in a pipe or FIFO the program reads through `reader` (none when it only writes
    /// it: see findPipeReaders), duplicated without being consumed: tee(2) into a private pipe as large as
    /// the program's, then read from that one. The program's own descriptor is used, never a reopen of
    /// /proc/self/fd/N, so a pipe another user (root) created is read as the program itself reads it.
    /// Every thread is frozen, so nobody reads or writes meanwhile.
    @_noAllocation @_noLocks
    private func capturePipeBytes(_ fd: Int32, reader: Int32) throws(FreezeFailure) -> Int {
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
            RawSyscall.call(293 /* pipe2 */, Int(bitPattern: pointer), 0o2000000 | 0o4000 /* O_CLOEXEC | O_NONBLOCK */)
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
        var copied = RawSyscall.call(276 /* tee */, Int(reader), Int(ends.1), count, 2 /* SPLICE_F_NONBLOCK */)
        while copied == -RawErrno.interrupted {
            copied = RawSyscall.call(276 /* tee */, Int(reader), Int(ends.1), count, 2 /* SPLICE_F_NONBLOCK */)
        }
        if copied < 0 { throw FreezeFailure(step: .readPipe, errno: -copied, object: Int(fd)) }
        if copied < count { throw FreezeFailure(step: .readPipe, errno: RawErrno.tooBig, object: Int(fd)) }
        let got = RawSyscall.readAll(ends.0, extraBuffer, count)
        if got < 0 { throw FreezeFailure(step: .readPipe, errno: -got, object: Int(fd)) }
        return count
    }

    /// /proc/self/fdinfo/N of an epoll instance: one "tfd: FD events: HEX data: HEX ..." line per registration.
    @_noAllocation @_noLocks
    private func captureEpollEntries(_ fd: Int32) throws(FreezeFailure) -> Int {
        let info = try readInfo(fd)
        let entries = extraBuffer.assumingMemoryBound(to: stasis_epoll_entry_t.self)
        let capacity = Self.extraCapacity / MemoryLayout<stasis_epoll_entry_t>.stride
        var count = 0
        var cursor = ByteCursor(info.text, count: info.count)
        while !cursor.atEnd {
            let lineStart = cursor.index
            cursor.skipPast(UInt8(ascii: "\n"))
            var line = ByteCursor(info.text + lineStart, count: cursor.index - lineStart)
            guard line.skipWord("tfd:") else { continue }
            line.skip(UInt8(ascii: " "))
            guard let target = line.decimal() else { continue }
            line.skip(UInt8(ascii: " "))
            guard line.skipWord("events:") else { continue }
            line.skip(UInt8(ascii: " "))
            guard let events = line.hex() else { continue }
            line.skip(UInt8(ascii: " "))
            guard line.skipWord("data:") else { continue }
            line.skip(UInt8(ascii: " "))
            guard let data = line.hex(), count < capacity else { continue }
            entries[count] = stasis_epoll_entry_t(fd: Int32(truncatingIfNeeded: target),
                                                  events: UInt32(truncatingIfNeeded: events), data: data)
            count += 1
        }
        return count * MemoryLayout<stasis_epoll_entry_t>.stride
    }

    @_noAllocation @_noLocks
    private func readInfo(_ fd: Int32) throws(FreezeFailure) -> FDInfo {
        var path = TextBuffer(pathMemory, capacity: 64)
        path.append("/proc/self/fdinfo/")
        path.append(decimal: Int(fd))
        let n = ProcFile.read(path.cString, into: infoBuffer, capacity: Self.infoCapacity)
        if n < 0 { throw FreezeFailure(step: .readProc, errno: -n, object: Int(fd)) }
        return FDInfo(text: infoBuffer.assumingMemoryBound(to: UInt8.self), count: n)
    }

    static let maxSavedFileBytes: Int64 = 4 << 30

    @_noAllocation @_noLocks
    private func socketOption(_ fd: Int32, _ name: Int) -> Int32 {
        var value: Int32 = 0
        return getSocketOption(fd, level: 1 /* SOL_SOCKET */, name, into: &value, size: 4) ? value : 0
    }

    /// getsockopt(2) into the `size` bytes at `value`, which the kernel must fill whole; false on failure.
    @_noAllocation @_noLocks
    private func getSocketOption(_ fd: Int32, level: Int, _ name: Int, into value: UnsafeMutableRawPointer, size: Int) -> Bool {
        var length = UInt32(size)
        let r = withUnsafeMutablePointer(to: &length) { l in
            RawSyscall.call(55 /* getsockopt */, Int(fd), level, name, Int(bitPattern: value), Int(bitPattern: l))
        }
        return r == 0 && length == UInt32(size)
    }

    @_noAllocation @_noLocks
    private func socketIsListening(_ fd: Int32) -> Bool { socketOption(fd, 30 /* SO_ACCEPTCONN */) != 0 }

    /// The bytes waiting to be read on a stream socket, left in place (MSG_PEEK), after `offset`.
    @_noAllocation @_noLocks
    private func peekQueued(_ fd: Int32, at offset: Int) -> Int {
        let n = RawSyscall.call(45 /* recvfrom */, Int(fd), Int(bitPattern: extraBuffer + offset), Self.extraCapacity - offset,
                                0x2 | 0x40 /* MSG_PEEK | MSG_DONTWAIT */, 0, 0)
        return n > 0 ? n : 0
    }

    /// A TCP listener's backlog (0 if unknown): TCP_INFO reports sk_max_ack_backlog in tcpi_sacked (byte 28) for a
    /// listening socket.
    @_noAllocation @_noLocks
    private func tcpListenBacklog(_ fd: Int32) -> UInt32 {
        var info: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // the first 32 bytes of struct tcp_info
        guard getSocketOption(fd, level: 6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, into: &info, size: 32) else { return 0 }  // 0: not known
        return UInt32(truncatingIfNeeded: info.3 &>> 32)
    }

    /// The datagrams waiting on a UNIX datagram socket, each as a 4-byte length and its bytes, left in
    /// place: with SO_PEEK_OFF set, each MSG_PEEK returns the next one. The program's own peek offset
    /// is put back. Stops early (the rest are lost) only if they do not fit in the record.
    @_noAllocation @_noLocks
    private func peekDatagrams(_ fd: Int32, at offset: Int) -> Int {
        var previous: Int32 = -1
        guard getSocketOption(fd, level: 1 /* SOL_SOCKET */, 42 /* SO_PEEK_OFF */, into: &previous, size: 4), setPeekOffset(fd, 0)
        else { return 0 }
        var used = 0
        while offset + used + 4 <= Self.extraCapacity {
            let space = Self.extraCapacity - offset - used - 4
            let n = RawSyscall.call(45 /* recvfrom */, Int(fd), Int(bitPattern: extraBuffer + offset + used + 4), space,
                                    0x2 | 0x40 | 0x20 /* MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC */, 0, 0)
            guard n >= 0, n <= space else { break }  // queue empty, or this one does not fit
            extraBuffer.storeBytes(of: UInt32(n), toByteOffset: offset + used, as: UInt32.self)
            used += 4 + n
        }
        _ = setPeekOffset(fd, previous)
        return used
    }

    @_noAllocation @_noLocks
    private func setPeekOffset(_ fd: Int32, _ value: Int32) -> Bool {
        var v = value
        return withUnsafeMutablePointer(to: &v) { p in
            RawSyscall.call(54 /* setsockopt */, Int(fd), 1 /* SOL_SOCKET */, 42 /* SO_PEEK_OFF */, Int(bitPattern: p), 4)
        } == 0
    }

    /// The peer of a UNIX socket, from NETLINK_SOCK_DIAG (UNIX_DIAG_PEER); the table of every UNIX
    /// socket's peer is read once per checkpoint.
    @_noAllocation @_noLocks
    private mutating func unixPeer(of inode: UInt32) throws(FreezeFailure) -> UInt32 {
        if peerCount < 0 { try loadUnixPeers() }
        for i in 0..<max(peerCount, 0) where peerTable[2 * i] == inode { return peerTable[2 * i + 1] }
        return 0
    }

    @_noAllocation @_noLocks
    private mutating func loadUnixPeers() throws(FreezeFailure) {
        peerCount = 0
        let fd = RawSyscall.call(41 /* socket */, 16 /* AF_NETLINK */, 2 | 0o2000000 /* SOCK_DGRAM | CLOEXEC */, 4 /* NETLINK_SOCK_DIAG */)
        if fd < 0 { return }  // no sock_diag: no pairs, every UNIX socket comes back with its peer gone
        defer { RawSyscall.close(Int32(fd)) }
        // nlmsghdr (16) + unix_diag_req (24): SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, AF_UNIX,
        // every state, UDIAG_SHOW_PEER.
        let request = infoBuffer
        for i in 0..<40 { request.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        request.storeBytes(of: UInt32(40), toByteOffset: 0, as: UInt32.self)
        request.storeBytes(of: UInt16(20), toByteOffset: 4, as: UInt16.self)
        request.storeBytes(of: UInt16(0x301), toByteOffset: 6, as: UInt16.self)
        request.storeBytes(of: UInt8(1), toByteOffset: 16, as: UInt8.self)
        request.storeBytes(of: UInt32.max, toByteOffset: 20, as: UInt32.self)
        request.storeBytes(of: UInt32(4), toByteOffset: 28, as: UInt32.self)
        if RawSyscall.call(44 /* sendto */, fd, Int(bitPattern: request), 40, 0, 0, 0) != 40 { return }
        while true {
            let n = RawSyscall.call(45 /* recvfrom */, fd, Int(bitPattern: infoBuffer), Self.infoCapacity, 0, 0, 0)
            if n == -RawErrno.interrupted { continue }
            if n <= 0 { return }
            var offset = 0
            while offset + 16 <= n {
                let length = Int(infoBuffer.load(fromByteOffset: offset, as: UInt32.self))
                let type = infoBuffer.load(fromByteOffset: offset + 4, as: UInt16.self)
                if type == 3 /* NLMSG_DONE */ || type == 2 /* NLMSG_ERROR */ { return }
                guard length >= 16 + 16, offset + length <= n else { return }
                let inode = infoBuffer.load(fromByteOffset: offset + 16 + 4, as: UInt32.self)
                var attribute = offset + 16 + 16
                while attribute + 4 <= offset + length {
                    let attributeLength = Int(infoBuffer.load(fromByteOffset: attribute, as: UInt16.self))
                    let attributeType = infoBuffer.load(fromByteOffset: attribute + 2, as: UInt16.self)
                    guard attributeLength >= 4 else { break }
                    if attributeType == 2 /* UNIX_DIAG_PEER */, attributeLength >= 8, peerCount < Self.peerCapacity {
                        peerTable[2 * peerCount] = inode
                        peerTable[2 * peerCount + 1] = infoBuffer.load(fromByteOffset: attribute + 4, as: UInt32.self)
                        peerCount += 1
                    }
                    attribute += (attributeLength + 3) & ~3
                }
                offset += (length + 3) & ~3
            }
        }
    }

    /// stasis_socket_state_t into extraBuffer; returns its size.
    @_noAllocation @_noLocks
    private func captureSocket(_ fd: Int32) -> Int {
        let state = extraBuffer.assumingMemoryBound(to: stasis_socket_state_t.self)
        state.pointee = stasis_socket_state_t()
        state.pointee.domain = socketOption(fd, 39 /* SO_DOMAIN */)
        state.pointee.type = socketOption(fd, 3 /* SO_TYPE */)
        state.pointee.protocol = socketOption(fd, 38 /* SO_PROTOCOL */)
        var options: UInt32 = 0
        if socketOption(fd, 2 /* SO_REUSEADDR */) != 0 { options |= UInt32(STASIS_SOCKET_REUSEADDR) }
        if socketOption(fd, 15 /* SO_REUSEPORT */) != 0 { options |= UInt32(STASIS_SOCKET_REUSEPORT) }
        if socketOption(fd, 9 /* SO_KEEPALIVE */) != 0 { options |= UInt32(STASIS_SOCKET_KEEPALIVE) }
        state.pointee.options = options
        state.pointee.receive_buffer = socketOption(fd, 8 /* SO_RCVBUF */)
        state.pointee.send_buffer = socketOption(fd, 7 /* SO_SNDBUF */)
        var length: UInt32 = 128
        let r = withUnsafeMutablePointer(to: &length) { l in
            RawSyscall.call(51 /* getsockname */, Int(fd), Int(bitPattern: extraBuffer + 32), Int(bitPattern: l))
        }
        state.pointee.address_bytes = r == 0 ? min(length, 128) : 0
        return MemoryLayout<stasis_socket_state_t>.size
    }

    /// A deleted file's contents, padded with zeros to the page: read with pread (the offset does not move)
    /// through the program's own fd when it can read, so a file another user (root) created and the
    /// program cannot open again is saved too; through a fresh read-only open of /proc/self/fd/N only
    /// for a write-only (or O_DIRECT) fd.
    @_noAllocation @_noLocks
    private func copyContents(_ fd: Int32, bytes: UInt64, padded: UInt64, into image: inout ImageFile) throws(FreezeFailure) {
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

    /// The bytes queued in the pair whose master is `master` (its slave's modes are at extraBuffer): taken
    /// out and put back (stasis_pty.h), stored after the window size as u32 input bytes, u32 output bytes,
    /// the input (for the slave to read), the output (for the master to read). Returns the bytes added
    /// after the first 44, 0 when nothing is queued. Only for a pair whose slave the program holds too
    /// (the pair restart recreates): the slave is used through the program's own fd, since opening it
    /// afresh and closing it would hang the master up when nobody else has it open.
    @_noAllocation @_noLocks
    private func captureTerminalQueues(master: Int32, number: UInt32) -> Int {
        var slave = -1
        for i in 0..<ptySlaveCount where ptySlaves[2 * i] == Int32(bitPattern: number) { slave = Int(ptySlaves[2 * i + 1]) }
        if slave < 0 { return 0 }
        let input = extraBuffer + 52
        let output = input + Int(STASIS_PTY_INPUT_MAX)
        var inputBytes: UInt32 = 0
        var outputBytes: UInt32 = 0
        let modes = UnsafePointer(extraBuffer.assumingMemoryBound(to: stasis_pty_modes_t.self))
        let scratch = infoBuffer.assumingMemoryBound(to: UInt8.self)
        _ = _unsafePerformance {
            stasis_pty_take_queues(master, Int32(slave), modes, input.assumingMemoryBound(to: UInt8.self), &inputBytes,
                                   output.assumingMemoryBound(to: UInt8.self), &outputBytes, scratch)
        }
        if inputBytes == 0 && outputBytes == 0 { return 0 }
        extraBuffer.storeBytes(of: inputBytes, toByteOffset: 44, as: UInt32.self)
        extraBuffer.storeBytes(of: outputBytes, toByteOffset: 48, as: UInt32.self)
        for i in 0..<Int(outputBytes) {  // the output right after the input
            (input + Int(inputBytes) + i).storeBytes(of: output.load(fromByteOffset: i, as: UInt8.self), as: UInt8.self)
        }
        return 8 + Int(inputBytes) + Int(outputBytes)
    }

    /// TCGETS succeeds only on a terminal; it leaves the modes in extraBuffer.
    @_noAllocation @_noLocks
    private func isTerminal(_ fd: Int32) -> Bool {
        RawSyscall.call(STASIS_NR_ioctl, Int(fd), 0x5401 /* TCGETS */, Int(bitPattern: extraBuffer)) == 0
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

@_noAllocation @_noLocks
func startsWith(_ bytes: UnsafePointer<UInt8>, _ count: Int, _ prefix: StaticString) -> Bool {
    let n = prefix.utf8CodeUnitCount
    guard count >= n else { return false }
    for i in 0..<n where bytes[i] != prefix.utf8Start[i] { return false }
    return true
}

/// The text of /proc/self/fdinfo/N ("name:<spaces>value" lines).
struct FDInfo {
    let text: UnsafePointer<UInt8>
    let count: Int

    /// The decimal value after `name` at the start of a line.
    @_noAllocation @_noLocks
    func decimalField(_ name: StaticString) -> UInt64? {
        guard var line = find(name) else { return nil }
        guard let value = line.decimal(), value >= 0 else { return nil }
        return UInt64(value)
    }

    /// "name: (A, B)" as two decimals.
    @_noAllocation @_noLocks
    func pairField(_ name: StaticString) -> (Int64, Int64)? {
        guard var line = find(name), line.skipWord("("), let a = line.decimal(), line.skipWord(",") else { return nil }
        line.skip(UInt8(ascii: " "))
        guard let b = line.decimal() else { return nil }
        return (a, b)
    }

    /// A cursor just past `name` and its blanks, on the line that starts with it.
    @_noAllocation @_noLocks
    func find(_ name: StaticString) -> ByteCursor? {
        var cursor = ByteCursor(text, count: count)
        while !cursor.atEnd {
            let lineStart = cursor.index
            cursor.skipPast(UInt8(ascii: "\n"))
            var line = ByteCursor(text + lineStart, count: cursor.index - lineStart)
            if line.skipWord(name) {
                while line.current == UInt8(ascii: " ") || line.current == UInt8(ascii: "\t") { line.index += 1 }
                return line
            }
        }
        return nil
    }

    /// The hexadecimal value after `name` at the start of a line.
    @_noAllocation @_noLocks
    func hexField(_ name: StaticString) -> UInt64? {
        guard var line = find(name) else { return nil }
        return line.hex()
    }
}
