import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// `stasis restart --fd N=PATH` / `--fd N=inherit`: what the program's fd N becomes instead of what the
/// image says (a log file that was moved or rotated, a descriptor the caller provides), like CRIU's
/// --inherit-fd.
enum DescriptorOverride: Equatable {
    case path(String)  // opened with the program's access mode and flags (append stays append), created if missing
    case inherit       // restart's own fd N

    /// Parses the --fd values; usage errors for bad syntax, a repeated N, or `inherit` of an fd restart
    /// does not have (checked before restart opens anything of its own).
    static func parse(_ values: [String]) throws(LauncherError) -> [Int32: DescriptorOverride] {
        var result: [Int32: DescriptorOverride] = [:]
        for value in values {
            guard let eq = value.firstIndex(of: "="), let fd = Int32(value[..<eq]), fd >= 0, fd < 1 << 20,
                !value[value.index(after: eq)...].isEmpty
            else { throw LauncherError(.usage, "--fd needs N=PATH or N=inherit, not \"\(value)\"; see `stasis restart --help`") }
            guard result[fd] == nil else { throw LauncherError(.usage, "--fd \(fd) is given twice") }
            let target = String(value[value.index(after: eq)...])
            if target == "inherit" {
                guard fcntl(fd, F_GETFD) >= 0 else {
                    throw LauncherError(.usage, "--fd \(fd)=inherit: stasis restart has no fd \(fd) to pass on")
                }
                result[fd] = .inherit
            } else {
                result[fd] = .path(target)
            }
        }
        return result
    }

    /// The image's fds that the overrides replace: the named ones and every fd that shared an open file
    /// description with one of them (2>&1: `--fd 1=PATH` moves both). Usage error for an fd the
    /// program did not have.
    static func replaced(_ overrides: [Int32: DescriptorOverride], in image: Image) throws(LauncherError) -> Set<Int32> {
        let present = Set(image.fileDescriptors.map(\.fd))
        for fd in overrides.keys.sorted() where !present.contains(fd) {
            throw LauncherError(.usage, "--fd \(fd): the program had no fd \(fd) open at the checkpoint")
        }
        var result = Set(overrides.keys)
        for record in image.fileDescriptors where record.sharesWith >= 0 && result.contains(record.sharesWith) {
            result.insert(record.fd)
        }
        return result
    }
}

/// Reopens or recreates the image's descriptors in the launcher, at high numbers, for the child to move
/// into place (stasis_spawn). Pipes are recreated once per pipe with their buffered bytes; epoll
/// registrations are replayed by the child once every descriptor has its number.
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
    private var opened: [FileDescriptor] = []
    /// Restart's own fds above 2 given to the program (--fd N=inherit): closed here once it has them.
    private var inherited: [FileDescriptor] = []
    private var base: Int32 = 0

    init(image: Image, imageFD: FileDescriptor, statusFD: FileDescriptor, keyFD: FileDescriptor? = nil,
         imageSource: ImageSource? = nil, extraDescriptors: [FileDescriptor] = [],
         overrides: [Int32: DescriptorOverride] = [:]) throws(LauncherError) {
        let highest = image.fileDescriptors.map(\.fd).max() ?? 2
        imageTarget = max(highest, 2) + 1
        statusTarget = imageTarget + 1
        base = statusTarget + 17 + Int32(extraDescriptors.count)
        var pipes: [UInt64: (read: FileDescriptor, write: FileDescriptor)] = [:]
        let present = Set(image.fileDescriptors.map(\.fd))
        var sources: [Int32: FileDescriptor] = [:]
        var fifosSeen = Set<UInt64>()
        // UNIX sockets by inode, to find the pairs whose two ends the program had.
        var socketPeers: [UInt64: FileDescriptorRecord] = [:]
        for record in image.fileDescriptors where record.kind == .resetSocket { socketPeers[record.objectID] = record }
        var pairs: [UInt64: FileDescriptor] = [:]  // inode -> the new end for it
        // Pseudo-terminals the program holds both ends of, by their old number.
        var ptyMasters: [UInt64: FileDescriptorRecord] = [:]
        for record in image.fileDescriptors where record.kind == .ptyMaster { ptyMasters[record.objectID] = record }
        // Their slaves the program holds: only those are opened (opening and closing a slave nobody
        // else holds would hang the new master up, as if the program's own slave had gone).
        var ptySlavesHeld = Set<UInt64>()
        for record in image.fileDescriptors where record.kind == .terminal && record.path.hasPrefix("/dev/pts/") {
            if let number = UInt64(record.path.dropFirst(9)) { ptySlavesHeld.insert(number) }
        }
        var ptys: [UInt64: (master: FileDescriptor, slave: FileDescriptor?)] = [:]
        for record in image.fileDescriptors {
            let source: FileDescriptor
            if let override = overrides[record.fd] {
                switch override {
                case .inherit: source = try duplicate(FileDescriptor(rawValue: record.fd))
                case .path(let path): source = try openReplacement(path, for: record)
                }
                if record.fd > 2, case .inherit = override { inherited.append(FileDescriptor(rawValue: record.fd)) }
                moves.append(stasis_fd_move_t(source: source.rawValue, target: record.fd,
                                              close_on_exec: record.isCloseOnExec ? 1 : 0, reserved: 0))
                sources[record.fd] = source
                continue
            }
            // A dup'ed descriptor gets the same open file description (one offset, one set of flags).
            if record.sharesWith >= 0, let shared = sources[record.sharesWith] {
                moves.append(stasis_fd_move_t(source: shared.rawValue, target: record.fd,
                                              close_on_exec: record.isCloseOnExec ? 1 : 0, reserved: 0))
                sources[record.fd] = shared
                continue
            }
            switch record.kind {
            case .inherit:
                if record.fd <= 2 { keepStdio |= 1 << record.fd }
                continue
            case .deleted, .memfd:
                guard let imageSource else { throw LauncherError(.failure, "fd \(record.fd): no image to read its contents from") }
                source = try recreateContents(record, from: imageSource)
            case .fifo:
                source = try reopenFIFO(record, refill: !fifosSeen.contains(record.objectID))
                fifosSeen.insert(record.objectID)
            case .listeningSocket:
                guard let state = record.socketState, !state.address.isEmpty else {
                    throw LauncherError(.restoreFailed, "fd \(record.fd): a listening socket without an address")
                }
                let fd = state.address.withUnsafeBytes { address in
                    stasis_make_listener(state.domain, state.type, state.socketProtocol, state.options, address.baseAddress!,
                                         UInt32(address.count), state.receiveBuffer, state.sendBuffer, state.listenBacklog)
                }
                guard fd >= 0 else {
                    throw LauncherError(.restoreFailed, "fd \(record.fd): cannot listen again on the saved address: \(Errno(rawValue: -fd)); is it in use?")
                }
                try setStatusFlags(FileDescriptor(rawValue: fd), record)
                source = try keep(FileDescriptor(rawValue: fd), record)
            case .resetSocket:
                guard let state = record.socketState else { continue }
                // Both ends in the image: a socketpair again, with what each end had waiting.
                if state.domain == AF_UNIX, state.peerInode != 0, let peer = socketPeers[UInt64(state.peerInode)] {
                    source = try socketPair(record, state, peer: peer, &pairs)
                    try setStatusFlags(source, record)
                    break
                }
                let fd = stasis_make_reset_socket(state.domain, state.type, state.socketProtocol)
                guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot make a socket: \(Errno(rawValue: -fd))") }
                try setStatusFlags(FileDescriptor(rawValue: fd), record)
                source = try keep(FileDescriptor(rawValue: fd), record)
            case .signalfd:
                let fd = stasis_make_signalfd(record.objectID, Int32(bitPattern: record.statusFlags) & O_NONBLOCK != 0 ? 1 : 0)
                guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate a signalfd: \(Errno(rawValue: -fd))") }
                source = try keep(FileDescriptor(rawValue: fd), record)
            case .unsupported:
                printError("stasis: warning: fd \(record.fd) (\(record.path)) was not saved (--skip-unsupported); it is /dev/null now")
                source = try keep(try reopenNull(record), record)
            case .inotify:
                source = try inotify(record)
            case .ptyMaster:
                source = try ptyPair(record, &ptys, openSlave: ptySlavesHeld.contains(record.objectID)).master
            case .terminal where record.path.hasPrefix("/dev/pts/"):
                // The slave of a pair whose master the program holds: the new pair's slave.
                if let number = UInt64(record.path.dropFirst(9)), let master = ptyMasters[number] {
                    guard let slave = try ptyPair(master, &ptys, openSlave: true).slave else { continue }  // opened: held
                    source = slave
                    applyModes(record, to: source.rawValue)
                    break
                }
                guard let fd = try terminal(record) else { continue }
                source = fd
            case .terminal:
                guard let fd = try terminal(record) else { continue }
                source = fd
            case .regular, .device, .directory:
                source = try reopen(record)
            case .pipe:
                if pipes[record.objectID] == nil { pipes[record.objectID] = try makePipe(record) }
                guard let pipe = pipes[record.objectID] else { continue }
                source = record.statusFlags & UInt32(O_ACCMODE) == UInt32(O_RDONLY) ? pipe.read : pipe.write
                try setStatusFlags(source, record)
            case .eventfd:
                let fd = stasis_make_eventfd(record.objectID, record.objectFlags & FileDescriptorRecord.eventfdSemaphore != 0 ? 1 : 0,
                                             Int32(bitPattern: record.statusFlags) & O_NONBLOCK != 0 ? 1 : 0)
                guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate an eventfd: \(Errno(rawValue: -fd))") }
                source = try keep(FileDescriptor(rawValue: fd), record)
            case .timerfd:
                guard let timer = record.timerState else { continue }
                let fd = stasis_make_timerfd(Int32(truncatingIfNeeded: record.objectID),
                                             Int32(bitPattern: record.statusFlags) & O_NONBLOCK != 0 ? 1 : 0, timer.ticks,
                                             timer.valueSeconds, timer.valueNanoseconds, timer.intervalSeconds,
                                             timer.intervalNanoseconds)
                guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate a timerfd: \(Errno(rawValue: -fd))") }
                source = try keep(FileDescriptor(rawValue: fd), record)
            case .epoll:
                let fd = stasis_make_epoll()
                guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate an epoll instance: \(Errno(rawValue: -fd))") }
                source = try keep(FileDescriptor(rawValue: fd), record)
                // Registrations of descriptors the image does not have were closed before the checkpoint.
                for entry in record.epollEntries where present.contains(entry.fd) {
                    epollAdds.append(stasis_epoll_add_t(epoll_fd: record.fd, fd: entry.fd, events: entry.events, reserved: 0,
                                                        data: entry.data))
                }
            }
            moves.append(stasis_fd_move_t(source: source.rawValue, target: record.fd,
                                          close_on_exec: record.isCloseOnExec ? 1 : 0, reserved: 0))
            sources[record.fd] = source
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

    /// Moves `fd` above the program's numbers and keeps it until the child has its copy.
    private mutating func keep(_ fd: FileDescriptor, _ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        defer { fd.closeAfterError() }
        do {
            let moved = try fd.duplicate(atLeast: base)
            opened.append(moved)
            return moved
        } catch {
            throw LauncherError(.failure, "fd \(record.fd): cannot duplicate: \(error)")
        }
    }

    private mutating func duplicate(_ fd: FileDescriptor) throws(LauncherError) -> FileDescriptor {
        do {
            let copy = try fd.duplicate(atLeast: base)
            opened.append(copy)
            return copy
        } catch {
            throw LauncherError(.failure, "cannot duplicate a descriptor: \(error)")
        }
    }

    /// A new pipe with the old one's capacity and buffered bytes. An end the image lacks is closed with
    /// the launcher: the program then sees end of file or EPIPE, as if the peer had gone.
    private mutating func makePipe(_ record: FileDescriptorRecord) throws(LauncherError) -> (read: FileDescriptor, write: FileDescriptor) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot create a pipe: \(Errno.current)") }
        let read = try keep(FileDescriptor(rawValue: ends[0]), record)
        let write = try keep(FileDescriptor(rawValue: ends[1]), record)
        if record.objectFlags > 0 { _ = fcntl(write.rawValue, 1031 /* F_SETPIPE_SZ */, Int32(bitPattern: record.objectFlags)) }
        if !record.extra.isEmpty {
            do {
                try write.writeAll(record.extra)
            } catch {
                throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill the pipe: \(error)")
            }
        }
        return (read, write)
    }

    private func setStatusFlags(_ fd: FileDescriptor, _ record: FileDescriptorRecord) throws(LauncherError) {
        let wanted = Int32(bitPattern: record.statusFlags) & O_NONBLOCK
        let current = fcntl(fd.rawValue, F_GETFL)
        guard current >= 0, fcntl(fd.rawValue, F_SETFL, (current & ~O_NONBLOCK) | wanted) == 0 else {
            throw LauncherError(.restoreFailed, "fd \(record.fd): cannot set status flags: \(Errno.current)")
        }
    }

    /// Opens with the recorded access mode and status flags, at the recorded offset.
    private mutating func reopen(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        let keepFlags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK | 0o40000 /* O_DIRECT */
            | 0o1000000 /* O_NOATIME */ | O_SYNC | O_DSYNC | 0o100000 /* O_LARGEFILE */ | O_DIRECTORY | 0o10000000 /* O_PATH */)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(record.path, keepFlags | (record.kind == .directory ? O_DIRECTORY : 0))
        } catch {
            throw LauncherError(.filesChanged, "fd \(record.fd): cannot reopen \(record.path): \(error)")
        }
        if record.kind != .device && record.offset > 0 {
            do {
                try fd.seek(to: record.offset)
            } catch {
                fd.closeAfterError()
                throw LauncherError(.filesChanged, "fd \(record.fd): cannot seek \(record.path) to \(record.offset): \(error)")
            }
        }
        return try keep(fd, record)
    }

    /// A deleted file comes back unlinked (O_TMPFILE in its old directory, else /tmp), a memfd as a
    /// memfd with its seals; contents from the image, then the recorded access mode and offset.
    private mutating func recreateContents(_ record: FileDescriptorRecord, from image: ImageSource) throws(LauncherError)
        -> FileDescriptor
    {
        var original = record.path
        if original.hasSuffix(" (deleted)") { original.removeLast(10) }
        var fd: Int32
        if record.kind == .memfd {
            let name = original.hasPrefix("/memfd:") ? String(original.dropFirst(7)) : "stasis"
            fd = stasis_make_memfd(name)
        } else {
            let directory = String(original[..<(original.lastIndex(of: "/") ?? original.startIndex)])
            let mode = mode_t(record.mode & 0o7777)
            fd = open(directory.isEmpty ? "/" : directory, 0o20200000 /* O_TMPFILE */ | O_RDWR | O_CLOEXEC, mode)
            if fd < 0 { fd = open("/tmp", 0o20200000 /* O_TMPFILE */ | O_RDWR | O_CLOEXEC, mode) }
        }
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate \(original): \(Errno.current)") }
        let file = FileDescriptor(rawValue: fd)
        do {
            var offset: UInt64 = 0
            while offset < record.dataBytes {
                let count = Int(min(UInt64(4 << 20), record.dataBytes - offset))
                let bytes = try image.bytes(at: record.dataOffset + offset, count: count)
                try file.writeAll(bytes)
                offset += UInt64(count)
            }
        } catch {
            file.closeAfterError()
            throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill \(original): \(error)")
        }
        _ = ftruncate(fd, off_t(record.objectID))
        if record.kind == .memfd && record.objectFlags != 0 { _ = fcntl(fd, 1033 /* F_ADD_SEALS */, Int32(bitPattern: record.objectFlags)) }
        // The recorded access mode and status flags: a new open of the same inode.
        let flags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK)
        let reopened = open("/proc/self/fd/\(fd)", flags | O_CLOEXEC)
        file.closeAfterError()
        guard reopened >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot reopen \(original): \(Errno.current)") }
        let result = FileDescriptor(rawValue: reopened)
        if record.offset > 0 { _ = lseek(reopened, off_t(record.offset), SEEK_SET) }
        return try keep(result, record)
    }

    /// The new end for this record's inode, creating the pair (and refilling both directions) the first
    /// time either end is met.
    private mutating func socketPair(_ record: FileDescriptorRecord, _ state: FileDescriptorRecord.SocketState,
                                     peer: FileDescriptorRecord, _ pairs: inout [UInt64: FileDescriptor]) throws(LauncherError)
        -> FileDescriptor
    {
        if let end = pairs[record.objectID] { return end }
        var ends: [Int32] = [0, 0]
        let result = ends.withUnsafeMutableBufferPointer { stasis_make_socketpair(state.type, $0.baseAddress!) }
        guard result == 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate a socket pair: \(Errno(rawValue: -result))") }
        let mine = try keep(FileDescriptor(rawValue: ends[0]), record)
        let theirs = try keep(FileDescriptor(rawValue: ends[1]), peer)
        pairs[record.objectID] = mine
        pairs[peer.objectID] = theirs
        // What was waiting to be read on an end is sent again through the other one.
        do {
            try refill(through: theirs, state)
            if let peerState = peer.socketState { try refill(through: mine, peerState) }
        } catch {
            throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill the socket pair: \(error)")
        }
        return mine
    }

    /// Sends what was queued for reading on one end through the other: a stream's bytes as they are, a
    /// datagram socket's as the messages they were.
    private func refill(through end: FileDescriptor, _ state: FileDescriptorRecord.SocketState) throws(Errno) {
        if state.type == SOCK_DGRAM.rawValue, let messages = state.datagrams {  // validated at decode
            for message in messages { try end.send(message: message) }
        } else if !state.queued.isEmpty {
            try end.writeAll(state.queued)
        }
    }

    /// The terminal `stasis restart` runs on takes the old one's place, with the program's modes; nil when
    /// that is one of the launcher's own fds 0-2, kept as they are.
    private mutating func terminal(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor? {
        if record.fd <= 2 && isatty(record.fd) != 0 {
            keepStdio |= 1 << record.fd
            applyModes(record, to: record.fd)
            return nil
        }
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open("/dev/tty", O_RDWR | O_NOCTTY | (Int32(bitPattern: record.statusFlags) & O_NONBLOCK))
        } catch {
            if record.fd <= 2 {
                keepStdio |= 1 << record.fd  // no terminal here: whatever restart's fd is (a file, a pipe)
                return nil
            }
            fd = try reopenNull(record)
            printError("stasis: fd \(record.fd) was a terminal and `stasis restart` has none; it is /dev/null now")
        }
        applyModes(record, to: fd.rawValue)
        return try keep(fd, record)
    }

    /// A new inotify instance with every watch re-added on the same file (found by its handle) and with
    /// the same watch descriptor. A watch whose file is gone, or that needs privileges to find
    /// (open_by_handle_at: CAP_DAC_READ_SEARCH), is skipped with a warning; queued events are lost.
    private mutating func inotify(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_inotify(Int32(bitPattern: record.statusFlags) & O_NONBLOCK != 0 ? 1 : 0)
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot create an inotify instance: \(Errno(rawValue: -fd))") }
        for watch in record.inotifyWatches {
            var path = [CChar](repeating: 0, count: 4096)
            let found = watch.handle.withUnsafeBufferPointer { handle in
                stasis_path_of_handle(watch.device, watch.handleType, handle.baseAddress!, UInt32(handle.count), &path, 4096)
            }
            guard found == 0 else {
                printError("stasis: warning: fd \(record.fd): inotify watch \(watch.descriptor) not restored: its file cannot be found (\(Errno(rawValue: -found)))")
                continue
            }
            let wd = stasis_inotify_watch(fd, path, watch.mask, watch.descriptor)
            if wd != watch.descriptor {
                printError("stasis: warning: fd \(record.fd): inotify watch \(watch.descriptor) came back as \(wd)")
            }
        }
        return try keep(FileDescriptor(rawValue: fd), record)
    }

    /// A new pseudo-terminal pair for a master record (once per old number), with its modes and size.
    /// The slave is opened only with `openSlave` (the program holds it); the modes are set through the
    /// master either way.
    private mutating func ptyPair(_ master: FileDescriptorRecord, _ ptys: inout [UInt64: (master: FileDescriptor, slave: FileDescriptor?)],
                                  openSlave: Bool) throws(LauncherError) -> (master: FileDescriptor, slave: FileDescriptor?)
    {
        if let pair = ptys[master.objectID] { return pair }
        let fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard fd >= 0, ioctl(fd, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0, ioctl(fd, 0x8004_5430 /* TIOCGPTN */, &number) == 0
        else { throw LauncherError(.restoreFailed, "fd \(master.fd): cannot open a pseudo-terminal: \(Errno.current)") }
        let slaveFD = openSlave ? open("/dev/pts/\(number)", O_RDWR | O_NOCTTY | O_CLOEXEC) : -1
        guard slaveFD >= 0 || !openSlave else { throw LauncherError(.restoreFailed, "fd \(master.fd): cannot open /dev/pts/\(number): \(Errno.current)") }
        if master.extra.count >= 44 {
            var modes = Array(master.extra.prefix(36))
            var size = Array(master.extra[36..<44])
            _ = modes.withUnsafeMutableBytes { ioctl(fd, 0x5402 /* TCSETS: on the master, sets the slave's */, $0.baseAddress!) }
            _ = size.withUnsafeMutableBytes { ioctl(fd, 0x5414 /* TIOCSWINSZ */, $0.baseAddress!) }
            // What each side had still to read: back in the same queues (stasis_pty.h).
            if slaveFD >= 0, let queues = master.terminalQueues, !queues.input.isEmpty || !queues.output.isEmpty {
                var scratch = [UInt8](repeating: 0, count: Int(STASIS_PTY_INPUT_MAX))
                let result = modes.withUnsafeBytes { m in
                    queues.input.withUnsafeBufferPointer { i in
                        queues.output.withUnsafeBufferPointer { o in
                            stasis_pty_requeue(fd, slaveFD, m.baseAddress!.assumingMemoryBound(to: stasis_pty_modes_t.self),
                                               i.baseAddress, UInt32(i.count), o.baseAddress, UInt32(o.count), &scratch)
                        }
                    }
                }
                if result != 0 {
                    printError("stasis: warning: fd \(master.fd): the bytes queued in the pseudo-terminal may not all be back")
                }
            }
        }
        let pair = (master: try keep(FileDescriptor(rawValue: fd), master),
                    slave: slaveFD >= 0 ? try keep(FileDescriptor(rawValue: slaveFD), master) : nil)
        ptys[master.objectID] = pair
        return pair
    }

    /// A named FIFO: held open read-write by the launcher until the program has it (so that neither
    /// open blocks and the refill has a reader), refilled once, then opened with the recorded flags.
    private mutating func reopenFIFO(_ record: FileDescriptorRecord, refill: Bool) throws(LauncherError) -> FileDescriptor {
        let holder: FileDescriptor
        do {
            holder = try FileDescriptor.open(record.path, O_RDWR | O_NONBLOCK)
        } catch {
            throw LauncherError(.filesChanged, "fd \(record.fd): cannot reopen the FIFO \(record.path): \(error)")
        }
        opened.append(holder)
        // Bytes still in the FIFO (another process kept it open since) were never lost: not sent twice.
        var pending: Int32 = 0
        if refill && !record.extra.isEmpty && ioctl(holder.rawValue, UInt(FIONREAD), &pending) == 0 && pending == 0 {
            do {
                try holder.writeAll(record.extra)
            } catch {
                throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill the FIFO \(record.path): \(error)")
            }
        }
        let flags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK)
        let fd = open(record.path, flags | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw LauncherError(.filesChanged, "fd \(record.fd): cannot reopen the FIFO \(record.path): \(Errno.current)") }
        let file = FileDescriptor(rawValue: fd)
        try setStatusFlags(file, record)
        return try keep(file, record)
    }

    /// TCSETS with the saved struct termios (raw mode, echo...).
    private func applyModes(_ record: FileDescriptorRecord, to fd: Int32) {
        guard record.extra.count == 36 else { return }
        var modes = record.extra
        _ = modes.withUnsafeMutableBytes { ioctl(fd, 0x5402 /* TCSETS */, $0.baseAddress!) }
    }

    private func reopenNull(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        do {
            return try FileDescriptor.open("/dev/null", O_RDWR)
        } catch {
            throw LauncherError(.failure, "fd \(record.fd): cannot open /dev/null: \(error)")
        }
    }

    func closeAll() {
        for fd in opened { fd.closeAfterError() }
        for fd in inherited { fd.closeAfterError() }
    }

    /// --fd N=PATH: PATH opened with the program's access mode and status flags (append stays append),
    /// created (0666 less the umask) when it is missing and the program wrote to fd N, never truncated;
    /// positioned at the saved offset when PATH is at least that long, else at its end.
    private mutating func openReplacement(_ path: String, for record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        let flags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC
            | 0o100000 /* O_LARGEFILE */)
        let writes = flags & O_ACCMODE != O_RDONLY
        let fd = open(path, flags | O_NOCTTY | O_CLOEXEC | (writes ? O_CREAT : 0), 0o666)
        guard fd >= 0 else { throw LauncherError(.filesChanged, "--fd \(record.fd)=\(path): cannot open: \(Errno.current)") }
        let end = lseek(fd, 0, SEEK_END)
        if record.offset >= 0 && end >= 0 && Int64(end) >= record.offset && flags & O_APPEND == 0 {
            _ = lseek(fd, off_t(record.offset), SEEK_SET)
        }
        return try keep(FileDescriptor(rawValue: fd), record)
    }
}
