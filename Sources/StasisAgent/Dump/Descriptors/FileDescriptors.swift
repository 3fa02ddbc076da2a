// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// Open descriptors, from /proc/self/fd: one FILE_DESCRIPTOR record each. This file is the dispatcher:
/// it walks the table, decides each descriptor's kind from its link and fstat, and writes the record;
/// what a kind saves is captured in the file named after it (Pipes, Sockets, Eventfds, Epolls,
/// Timerfds, Signalfds, Inotify, Terminals, DeletedFiles, RegularFiles). fds 0-2 on anything else
/// take restart's own; anything else fails the checkpoint naming the fd (or, with
/// --skip-unsupported, is recorded as UNSUPPORTED), and the program keeps running.
struct FileDescriptorDumper {
    let directoryBuffer: UnsafeMutableRawPointer
    let linkBuffer: UnsafeMutableRawPointer
    let pathMemory: UnsafeMutableRawPointer
    let infoBuffer: UnsafeMutableRawPointer   // /proc/self/fdinfo/N text
    let extraBuffer: UnsafeMutableRawPointer  // pipe bytes or epoll entries for one record
    var skipUnsupported = false
    /// A tree member: the control block, whose descriptor lists tell a pipeline's stdio pipe that
    /// joins two processes of the tree (recorded as a pipe) from one that leads outside (INHERIT).
    var tree: TreeControl? = nil
    /// UNIX socket inode → peer inode pairs (sock_diag), read when the first UNIX socket is met.
    let peerTable: UnsafeMutablePointer<UInt32>
    var peerCount = -1
    static let peerCapacity = 65536
    /// Every descriptor of the pre-pass (DescriptionIndex.swift), in arena memory taken by `dump` for
    /// its own duration: the entries and their merge sort's scratch; then, by pre-pass position (fd
    /// order), each fd, the lowest fd with the same open file description (-1: none lower), and its
    /// pipe flags (Pipes.swift: a pipe or FIFO the program reads through it; its record written).
    var entries: UnsafeMutablePointer<DescriptionEntry>? = nil
    var entryScratch: UnsafeMutablePointer<DescriptionEntry>? = nil
    var slotFDs: UnsafeMutablePointer<Int32>? = nil
    var slotOwners: UnsafeMutablePointer<Int32>? = nil
    var slotFlags: UnsafeMutablePointer<UInt8>? = nil
    static let readableFlag: UInt8 = 1
    static let pipeWrittenFlag: UInt8 = 2
    var entryCapacity = 0
    var entryCount = 0
    /// Pseudo-terminal slaves the program holds: (pty number, one of its fds), from the same pre-pass.
    let ptySlaves: UnsafeMutablePointer<Int32>
    var ptySlaveCount = 0
    static let ptySlaveCapacity = 256
    static let directoryCapacity = 64 * 1024
    static let infoCapacity = 256 * 1024
    static let extraCapacity = 1 << 20  // the largest pipe buffer an unprivileged user may set
    static let fifoType: UInt32 = 0o010000  // S_IFIFO

    @_noAllocation @_noLocks
    static func make(arena: inout FreezeArena) -> FileDescriptorDumper? {
        guard let directory = arena.take(directoryCapacity), let link = arena.take(Int(STASIS_MAX_PATH)),
            let path = arena.take(64), let info = arena.take(infoCapacity), let extra = arena.take(extraCapacity),
            let peers = arena.take(peerCapacity * 8), let slaves = arena.take(ptySlaveCapacity * 8)
        else { return nil }
        return FileDescriptorDumper(directoryBuffer: directory, linkBuffer: link, pathMemory: path, infoBuffer: info,
                                    extraBuffer: extra,
                                    peerTable: peers.assumingMemoryBound(to: UInt32.self),
                                    ptySlaves: slaves.assumingMemoryBound(to: Int32.self))
    }

    /// Writes one record per descriptor except `excluded` (the image being written), `lock` (a tree root's lock file) and `agentOwn`
    /// (the dirty-page tracker's userfaultfd, or -1). The rest of the arena is scratch while it runs.
    @_noAllocation @_noLocks
    mutating func dump(excluding excluded: Int32, and agentOwn: Int32, lock: Int32 = -1, arena: inout FreezeArena,
                       into image: inout ImageFile) throws(FreezeFailure) {
        let dirFD = RawSyscall.open(literal: "/proc/self/fd", RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if dirFD < 0 { throw FreezeFailure(step: .readProc, errno: -dirFD) }
        defer { RawSyscall.close(Int32(dirFD)) }
        let mark = arena.mark
        defer { arena.reset(to: mark) }
        takeEntries(&arena)
        if entries == nil { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
        try findPipeReaders(dirFD: Int32(dirFD), excluding: excluded, and: agentOwn, lock: lock)
        try findSharedDescriptions()
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
                if fd == excluded || fd == agentOwn || fd == lock || fd == Int32(dirFD) { continue }
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

        let (extraBytes, contentBytes) = try capture(fd, st, link: link, linkCount, into: &record)
        record.path_bytes = UInt32(linkCount)
        record.extra_bytes = UInt32(extraBytes)
        record.shares_with = sharedDescription(fd)
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

    /// Decides the descriptor's kind from its link and fstat and captures what that kind saves: the
    /// first test that fits wins (IMAGE-FORMAT.md 4.6 lists them in this order). Returns the bytes
    /// left in extraBuffer and the bytes of contents to store as page data.
    @_noAllocation @_noLocks
    private mutating func capture(_ fd: Int32, _ st: stasis_kstat_t, link: UnsafePointer<UInt8>, _ linkCount: Int,
                                  into record: inout stasis_file_descriptor_record_t) throws(FreezeFailure)
        -> (extra: Int, contents: UInt64)
    {
        let type = st.st_mode & UInt32(STASIS_S_IFMT)
        let isDeleted = endsWith(link, linkCount, " (deleted)")
        let isPath = link[0] == UInt8(ascii: "/")
        var extraBytes = 0  // kind-specific bytes after the path, in extraBuffer
        var contentBytes: UInt64 = 0  // a deleted file's or memfd's contents, stored as page data
        if type == UInt32(STASIS_S_IFREG) && isPath && !isDeleted {
            record.kind = UInt32(STASIS_FD_REGULAR)
        } else if type == UInt32(STASIS_S_IFCHR) && isStatelessDevice(link, linkCount) {
            record.kind = UInt32(STASIS_FD_DEVICE)
        } else if type == UInt32(STASIS_S_IFREG) && isDeleted && isPath {
            contentBytes = try captureDeletedFile(fd, st, isMemfd: startsWith(link, linkCount, "/memfd:"), into: &record)
        } else if type == UInt32(STASIS_S_IFDIR) && isPath && !isDeleted {
            record.kind = UInt32(STASIS_FD_DIRECTORY)
        } else if type == Self.fifoType && startsWith(link, linkCount, "pipe:[") && (fd > 2 || pipeJoinsTree(st)) {
            // (A pipe at fd 0-2 is a pipeline's: INHERIT gives it restart's own, below; unless both
            // its ends are in the tree being checkpointed: `seq | consumer` under one shell.)
            extraBytes = try capturePipe(fd, st, into: &record)
        } else if linkEquals(link, linkCount, "anon_inode:[eventfd]") {
            try captureEventfd(fd, into: &record)
        } else if linkEquals(link, linkCount, "anon_inode:[timerfd]") {
            extraBytes = try captureTimerfd(fd, into: &record)
        } else if linkEquals(link, linkCount, "anon_inode:inotify") {
            extraBytes = try captureInotify(fd, into: &record)
        } else if linkEquals(link, linkCount, "anon_inode:[signalfd]") {
            try captureSignalfd(fd, into: &record)
        } else if linkEquals(link, linkCount, "anon_inode:[eventpoll]") {
            record.kind = UInt32(STASIS_FD_EPOLL)
            extraBytes = try captureEpollEntries(fd)
        } else if type == Self.fifoType && isPath && !isDeleted && fd > 2 {
            extraBytes = try captureFIFO(fd, st, into: &record)
        } else if type == 0o140000 /* S_IFSOCK */ && fd > 2 {
            extraBytes = try captureSocket(fd, st, into: &record)
        } else if type == UInt32(STASIS_S_IFCHR) && (linkEquals(link, linkCount, "/dev/ptmx")
            || linkEquals(link, linkCount, "/dev/pts/ptmx")) && isTerminal(fd)
        {
            extraBytes = capturePtyMaster(fd, into: &record)
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
        return (extraBytes, contentBytes)
    }

    /// Does the tree hold both a read end and a write end of this pipe (descriptor lists: device,
    /// inode, access mode)?
    @_noAllocation @_noLocks
    func pipeJoinsTree(_ st: stasis_kstat_t) -> Bool {
        guard let tree else { return false }
        var reads = false, writes = false
        for index in 0..<tree.memberCount {
            let list = tree.descriptors(index)
            for k in 0..<Int(tree.member(index).pointee.descriptor_count)
            where list[k].device == st.st_dev && list[k].inode == st.st_ino {
                let access = Int(list[k].access) - 1
                if access == 0 || access == 2 { reads = true }
                if access == 1 || access == 2 { writes = true }
            }
        }
        return reads && writes
    }

    /// All of the arena that is left, for the pre-pass's entries (a descriptor costs 76 bytes of it, pages
    /// are touched only as used: about 3 million descriptors fit).
    @_noAllocation @_noLocks
    mutating func takeEntries(_ arena: inout FreezeArena) {
        let stride = MemoryLayout<DescriptionEntry>.stride
        let capacity = max(0, (arena.capacity - arena.used - 256) / (2 * stride + 12))
        guard capacity > 0, let sorted = arena.take(capacity * stride), let scratch = arena.take(capacity * stride),
            let fds = arena.take(capacity * 4), let owners = arena.take(capacity * 4), let flags = arena.take(capacity)
        else { return }
        entries = sorted.assumingMemoryBound(to: DescriptionEntry.self)
        entryScratch = scratch.assumingMemoryBound(to: DescriptionEntry.self)
        slotFDs = fds.assumingMemoryBound(to: Int32.self)
        slotOwners = owners.assumingMemoryBound(to: Int32.self)
        slotFlags = flags.assumingMemoryBound(to: UInt8.self)
        entryCapacity = capacity
        entryCount = 0
    }

    /// The pre-pass met `fd`: one entry (fd order, as /proc/self/fd lists them); its slot.
    @_noAllocation @_noLocks
    mutating func addEntry(_ fd: Int32, _ st: stasis_kstat_t, pid: Int32) throws(FreezeFailure) -> Int {
        guard let entries, let slotFDs, let slotFlags, entryCount < entryCapacity else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace, object: Int(fd))
        }
        entries[entryCount] = DescriptionEntry(device: st.st_dev, inode: st.st_ino, pid: pid, fd: fd, rank: fd,
                                               slot: Int32(entryCount))
        slotFDs[entryCount] = fd
        slotFlags[entryCount] = 0
        entryCount += 1
        return entryCount - 1
    }

    /// The pre-pass's position of `fd`: a binary search of its fds (ascending, as /proc/self/fd lists them).
    @_noAllocation @_noLocks
    func slot(of fd: Int32) -> Int? {
        guard let slotFDs else { return nil }
        var low = 0, high = entryCount
        while low < high {
            let middle = low + (high - low) / 2
            if slotFDs[middle] < fd { low = middle + 1 } else { high = middle }
        }
        return low < entryCount && slotFDs[low] == fd ? low : nil
    }

    /// The sorted entries of one file (device and inode: the sort's first keys, no kcmp).
    @_noAllocation @_noLocks
    func entries(device: UInt64, inode: UInt64) -> Range<Int> {
        guard let entries else { return 0..<0 }
        var low = 0, high = entryCount
        while low < high {
            let middle = low + (high - low) / 2
            let e = entries[middle]
            if e.device < device || (e.device == device && e.inode < inode) { low = middle + 1 } else { high = middle }
        }
        var end = low
        while end < entryCount && entries[end].device == device && entries[end].inode == inode { end += 1 }
        return low..<end
    }

    /// Sorts the entries by description (DescriptionIndex.swift) and gives every fd of a run of equal
    /// ones the run's first, its lowest fd: O(n log n) kcmp calls at worst, none between distinct files.
    @_noAllocation @_noLocks
    mutating func findSharedDescriptions() throws(FreezeFailure) {
        guard let entries, let entryScratch, let slotOwners else { return }
        var order = DescriptionOrder(strict: false)
        try order.sort(entries, count: entryCount, scratch: entryScratch)
        var i = 0
        while i < entryCount {
            slotOwners[Int(entries[i].slot)] = -1
            var j = i + 1
            while j < entryCount, try order.compareFiles(entries[i], entries[j]) == 0 {
                slotOwners[Int(entries[j].slot)] = entries[i].fd
                j += 1
            }
            i = j
        }
    }

    /// The lowest descriptor with the same open file description (kcmp KCMP_FILE), or -1: dup'ed fds
    /// share one offset, and restart must give them one description again.
    @_noAllocation @_noLocks
    func sharedDescription(_ fd: Int32) -> Int32 {
        guard let slotOwners, let slot = slot(of: fd) else { return -1 }
        return slotOwners[slot]
    }
}
