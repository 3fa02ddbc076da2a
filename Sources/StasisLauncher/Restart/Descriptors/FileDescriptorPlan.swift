import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// Reopens or recreates the image's descriptors in the launcher, for the child to move into place
/// (stasis_spawn, a parallel move: a source may sit on another fd's target). A process's sources stay
/// at the numbers the kernel gave them (the lowest free, 3 and up), so restart needs about as many
/// numbers as the program had, not twice as many (DescriptorLimit.swift raises the soft limit to fit);
/// a tree's members' sources all live at once, above every member's numbers. This file is the dispatcher: overrides and dup'ed descriptors first, then
/// one function per kind, each in the file named after it (Files, DeletedFiles, Pipes, Sockets,
/// Eventfds, Epolls, Timerfds, Signalfds, Inotify, Terminals). Pipes are recreated once per pipe with
/// their buffered bytes; epoll registrations are replayed by the child once every descriptor has its
/// number.
struct FileDescriptorPlan {
    var moves: [stasis_fd_move_t] = []
    var epollAdds: [stasis_epoll_add_t] = []
    var keepStdio: Int32 = 0
    /// Numbers the restorer gets for the image and the status pipe (free in the program's table).
    var imageTarget: Int32 = 0
    var statusTarget: Int32 = 0
    /// With a key: the number the restorer gets for the pipe that carries it.
    var keyTarget: Int32 = -1
    /// The numbers the restorer gets for `extraDescriptors` (restore plan, parent images), in order.
    var extraTargets: [Int32] = []
    /// Every fd the image has (epoll registrations of others are dropped).
    let present: Set<Int32>
    /// Objects shared by several records, made once: per-kind state of Pipes, Sockets and Terminals.
    var shared = SharedObjects()
    private var opened: [FileDescriptor] = []
    /// Restart's own fds above 2 given to the program (--fd N=inherit): closed here once it has them.
    private var inherited: [FileDescriptor] = []
    private var base: Int32 = 0

    /// `tree`: a member of a process tree (Docs/ARCHITECTURE.md 3.6): objects are shared with the other
    /// members' plans, and a SHARED_DESCRIPTION record takes an earlier member's descriptor.
    init(image: Image, imageFD: FileDescriptor, statusFD: FileDescriptor, keyFD: FileDescriptor? = nil,
         imageSource: ImageSource? = nil, extraDescriptors: [FileDescriptor] = [],
         overrides: [Int32: DescriptorOverride] = [:], tree: TreeDescriptors? = nil) throws(LauncherError) {
        let highest = image.fileDescriptors.map(\.fd).max() ?? 2
        imageTarget = max(highest, 2) + 1
        statusTarget = imageTarget + 1
        base = tree?.base ?? 3  // never 0-2: restart's own stdio there may be kept for the program
        present = Set(image.fileDescriptors.map(\.fd))
        shared = tree?.shared ?? SharedObjects(image.fileDescriptors)
        let sharedDescriptions = Dictionary(image.sharedDescriptions.map { ($0.fd, $0) }, uniquingKeysWith: { first, _ in first })
        var sources: [Int32: FileDescriptor] = [:]
        var keptStdio: [Int32: Int32] = [:]  // the program's fd → restart's own fd it keeps (0-2)
        for record in image.fileDescriptors {
            let source: FileDescriptor
            if let override = overrides[record.fd] {
                switch override {
                case .inherit: source = try duplicate(FileDescriptor(rawValue: record.fd))
                case .path(let path): source = try openReplacement(path, for: record)
                }
                if record.fd > 2, case .inherit = override { inherited.append(FileDescriptor(rawValue: record.fd)) }
            } else if let tree, let share = sharedDescriptions[record.fd] {
                // One open file description with an earlier member's: that member's source, never this
                // record's contents (Docs/IMAGE-FORMAT.md, SHARED_DESCRIPTION).
                switch tree.sources[share.ownerPID]?[share.ownerFD] {
                case .descriptor(let owner)?: source = owner
                case .restartStdio(let fd)? where fd == record.fd:
                    keepStdio |= 1 << fd
                    keptStdio[record.fd] = fd
                    continue
                case .restartStdio(let fd)?: source = try duplicate(FileDescriptor(rawValue: fd))
                case nil:
                    throw LauncherError(.badImage, "process \(image.header.pid)'s fd \(record.fd) is process \(share.ownerPID)'s fd \(share.ownerFD), which that process's image does not restore")
                }
            } else if record.sharesWith >= 0, let shared = sources[record.sharesWith] {
                // A dup'ed descriptor gets the same open file description (one offset, one set of flags).
                source = shared
            } else {
                guard let made = try recreate(record, imageSource: imageSource) else {
                    if record.fd <= 2 && keepStdio & (1 << record.fd) != 0 { keptStdio[record.fd] = record.fd }
                    continue
                }
                source = made
            }
            moves.append(stasis_fd_move_t(source: source.rawValue, target: record.fd,
                                          close_on_exec: record.isCloseOnExec ? 1 : 0, reserved: 0))
            sources[record.fd] = source
        }
        if let tree {
            tree.shared = shared
            var mine = sources.mapValues { TreeDescriptors.Source.descriptor($0) }
            for (fd, kept) in keptStdio { mine[fd] = .restartStdio(kept) }
            tree.sources[image.header.pid] = mine
        }
        let image = try duplicate(imageFD)
        let status = try duplicate(statusFD)
        moves.append(stasis_fd_move_t(source: image.rawValue, target: imageTarget, close_on_exec: 0, reserved: 0))
        moves.append(stasis_fd_move_t(source: status.rawValue, target: statusTarget, close_on_exec: 0, reserved: 0))
        if let keyFD {
            keyTarget = statusTarget + 1
            let key = try duplicate(keyFD)
            moves.append(stasis_fd_move_t(source: key.rawValue, target: keyTarget, close_on_exec: 0, reserved: 0))
        }
        for (i, extra) in extraDescriptors.enumerated() {
            let target = statusTarget + 2 + Int32(i)
            let copy = try duplicate(extra)
            moves.append(stasis_fd_move_t(source: copy.rawValue, target: target, close_on_exec: 0, reserved: 0))
            extraTargets.append(target)
        }
    }

    /// The lowest number a tree's source may have: above the program's numbers and the restorer's own.
    static func lowestSource(for image: Image, extraDescriptors: Int) -> Int32 {
        let highest = image.fileDescriptors.map(\.fd).max() ?? 2
        return max(highest, 2) + 2 + 17 + Int32(extraDescriptors)
    }

    /// The new descriptor for one record, by kind; nil when the program keeps restart's own fd (or,
    /// for a pair, when nothing is to be opened).
    private mutating func recreate(_ record: FileDescriptorRecord, imageSource: ImageSource?) throws(LauncherError)
        -> FileDescriptor?
    {
        switch record.payload {
        case .inherit:
            if record.fd <= 2 { keepStdio |= 1 << record.fd }
            return nil
        case .regular, .device, .directory: return try reopen(record)
        case .unsupported: return try reopenUnsupported(record)
        case .deleted(let contents), .memfd(let contents):
            guard let imageSource else { throw LauncherError(.failure, "fd \(record.fd): no image to read its contents from") }
            return try recreateContents(record, contents, from: imageSource)
        case .pipe(let pipe): return try pipeEnd(record, pipe)
        case .fifo(let fifo): return try reopenFIFO(record, fifo)
        case .listeningSocket(let socket): return try listener(record, socket)
        case .resetSocket(let socket): return try resetSocket(record, socket)
        case .eventfd(let eventfd): return try makeEventfd(record, eventfd)
        case .signalfd(let signalfd): return try makeSignalfd(record, signalfd)
        case .timerfd(let timer): return try makeTimerfd(record, timer)
        case .epoll(let epoll): return try makeEpoll(record, epoll)
        case .inotify(let inotify): return try makeInotify(record, inotify)
        case .ptyMaster(let master): return try ptyPair(record, master, openSlave: shared.ptySlavesHeld.contains(master.number)).master
        case .terminal(let modes): return try terminal(record, modes)
        }
    }

    /// Keeps `fd` (moved to `base` or above unless it is there already) until the child has its copy.
    mutating func keep(_ fd: FileDescriptor, _ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        if fd.rawValue >= base {
            _ = fcntl(fd.rawValue, F_SETFD, FD_CLOEXEC)  // as a copy would be: only the child's moves give it on
            opened.append(fd)
            return fd
        }
        defer { fd.closeAfterError() }
        do {
            let moved = try fd.duplicate(atLeast: base)
            opened.append(moved)
            return moved
        } catch {
            throw LauncherError(.failure, "fd \(record.fd): cannot duplicate: \(error)")
        }
    }

    /// Keeps `holder` open until the child has its descriptors, without giving it to the program.
    mutating func hold(_ holder: FileDescriptor) { opened.append(holder) }

    private mutating func duplicate(_ fd: FileDescriptor) throws(LauncherError) -> FileDescriptor {
        do {
            let copy = try fd.duplicate(atLeast: base)
            opened.append(copy)
            return copy
        } catch {
            throw LauncherError(.failure, "cannot duplicate a descriptor: \(error)")
        }
    }

    /// O_NONBLOCK as recorded (the only status flag a new object does not get from how it was made).
    func setStatusFlags(_ fd: FileDescriptor, _ record: FileDescriptorRecord) throws(LauncherError) {
        let wanted = Int32(bitPattern: record.statusFlags) & O_NONBLOCK
        let current = fcntl(fd.rawValue, F_GETFL)
        guard current >= 0, fcntl(fd.rawValue, F_SETFL, (current & ~O_NONBLOCK) | wanted) == 0 else {
            throw LauncherError(.restoreFailed, "fd \(record.fd): cannot set status flags: \(Errno.current)")
        }
    }

    /// 1 when the record was O_NONBLOCK, for the stasis_make_* calls.
    func nonblocking(_ record: FileDescriptorRecord) -> Int32 { Int32(bitPattern: record.statusFlags) & O_NONBLOCK != 0 ? 1 : 0 }

    func closeAll() {
        for fd in opened { fd.closeAfterError() }
        for fd in inherited { fd.closeAfterError() }
    }
}

/// Objects that several records share, found in the image before any is made, and made once.
struct SharedObjects {
    /// Pipes by inode.
    var pipes: [UInt64: (read: FileDescriptor, write: FileDescriptor)] = [:]
    /// The bytes each pipe held, by inode: the first record that has them (the agent saves them once per
    /// process, in a process that reads the pipe; in a tree that may be a later member than the first
    /// to hold an end).
    var pipeBytes: [UInt64: [UInt8]] = [:]
    /// Memfds and deleted files by (device, inode): one file for every descriptor and mapping of it.
    var fileObjects: [FileObjectKey: FileDescriptor] = [:]
    /// FIFOs already refilled, by inode.
    var fifosRefilled = Set<UInt64>()
    /// UNIX sockets by inode, to find the pairs whose two ends the program had, and their new ends.
    var socketPeers: [UInt64: (record: FileDescriptorRecord, socket: SocketPayload)] = [:]
    var socketEnds: [UInt64: FileDescriptor] = [:]
    /// Pseudo-terminal masters the program holds, by their old number, and the new pairs.
    var ptyMasters: [UInt64: (record: FileDescriptorRecord, master: PtyMasterPayload)] = [:]
    var ptys: [UInt64: (master: FileDescriptor, slave: FileDescriptor?)] = [:]
    /// The slaves of those the program holds: only those are opened (opening and closing a slave nobody
    /// else holds would hang the new master up, as if the program's own slave had gone).
    var ptySlavesHeld = Set<UInt64>()

    init() {}

    /// The objects of a tree's members: every record but those of SHARED_DESCRIPTION descriptors (the
    /// owner's record stands for them; their contents must not be used).
    init(members images: [Image]) {
        var records: [FileDescriptorRecord] = []
        for image in images {
            let sharers = Set(image.sharedDescriptions.map(\.fd))
            records += image.fileDescriptors.filter { !sharers.contains($0.fd) }
        }
        self.init(records)
    }

    /// `records`: every record of the image.
    init(_ records: [FileDescriptorRecord]) {
        for record in records {
            switch record.payload {
            case .pipe(let pipe) where !pipe.queued.isEmpty && pipeBytes[pipe.inode] == nil: pipeBytes[pipe.inode] = pipe.queued
            case .resetSocket(let socket): socketPeers[socket.inode] = (record, socket)
            case .ptyMaster(let master): ptyMasters[master.number] = (record, master)
            case .terminal: if let number = record.ptySlaveNumber { ptySlavesHeld.insert(number) }
            default: break
            }
        }
    }
}

/// A file as the kernel names it: memfds and deleted files in FILE_DESCRIPTOR records, and the objects
/// of MEMORY_AREA records with STASIS_AREA_FILE_OBJECT, which use the same encoding.
struct FileObjectKey: Hashable {
    var device: UInt64
    var inode: UInt64
}

/// What the descriptor plans of a tree's members share (Docs/ARCHITECTURE.md 3.6): the objects made so
/// far (pipes, socket pairs, pty pairs, files), and each member's descriptors for the SHARED_DESCRIPTION
/// records of later members. One instance, passed to each member's plan in manifest order.
final class TreeDescriptors {
    enum Source {
        case descriptor(FileDescriptor)
        /// The program keeps `stasis restart`'s own fd 0-2 (a terminal, INHERIT).
        case restartStdio(Int32)
    }

    var shared: SharedObjects
    /// Above every member's program numbers and restorer numbers.
    let base: Int32
    /// pid → the program's fd → what it gets.
    var sources: [Int32: [Int32: Source]] = [:]

    init(shared: SharedObjects, base: Int32) {
        self.shared = shared
        self.base = base
    }
}
