/// One open descriptor (stasis_file_descriptor_record_t) and its path.
public struct FileDescriptorRecord: Equatable, Sendable {
    public static let fixedSize = 88
    public static let eventfdSemaphore: UInt32 = 1

    public enum Kind: UInt32, Sendable {
        case inherit = 0    // fd 0-2 on a terminal, pipe or socket: takes restart's own
        case regular = 1    // reopened by path at its offset
        case device = 2     // /dev/null and friends, reopened by path
        case directory = 3  // reopened by path at its offset
        case pipe = 4       // objectID: the pipe's inode; the pipe's first record carries its bytes
        case eventfd = 5    // objectID: counter; objectFlags: semaphore
        case epoll = 6      // extra: one EpollEntry per registration
        case timerfd = 7    // objectID: clock id; extra: TimerState
        case terminal = 8   // restart's own terminal takes its place; extra: struct termios (36 bytes)
        case unsupported = 9  // not saved (--skip-unsupported): /dev/null takes its place
        case signalfd = 10    // objectID: the signal mask
        case deleted = 11     // contents in the record's page data (objectID bytes); recreated unlinked
        case memfd = 12       // as deleted; objectFlags: seals
        case listeningSocket = 13  // extra: SocketState; re-created and bound
        case resetSocket = 14      // extra: SocketState; comes back with its peer gone
        case fifo = 15             // reopened by path; extra: buffered bytes (first record of that FIFO)
        case ptyMaster = 16        // objectID: pty number; extra: slave termios (36) + winsize (8) [+ queued bytes]
        case inotify = 17          // extra: the fdinfo text with one line per watch
    }

    /// One watch of an inotify instance, from its fdinfo line.
    public struct InotifyWatch: Equatable, Sendable {
        public var descriptor: Int32 = 0
        public var mask: UInt32 = 0
        public var device: UInt64 = 0  // kernel dev_t: major << 20 | minor
        public var handleType: Int32 = 0
        public var handle: [UInt8] = []
    }

    public var inotifyWatches: [InotifyWatch] {
        guard kind == .inotify else { return [] }
        var watches: [InotifyWatch] = []
        for line in String(decoding: extra, as: UTF8.self).split(separator: "\n") where line.hasPrefix("inotify ") {
            var watch = InotifyWatch()
            for field in line.split(separator: " ") {
                let parts = field.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let value = String(parts[1])
                switch parts[0] {
                case "wd": watch.descriptor = Int32(value, radix: 16) ?? 0
                case "mask": watch.mask = UInt32(value, radix: 16) ?? 0
                case "sdev": watch.device = UInt64(value, radix: 16) ?? 0
                case "fhandle-type": watch.handleType = Int32(value, radix: 16) ?? 0
                case "f_handle":
                    var bytes: [UInt8] = []
                    var index = value.startIndex
                    while let next = value.index(index, offsetBy: 2, limitedBy: value.endIndex), index < value.endIndex {
                        guard let byte = UInt8(value[index..<next], radix: 16) else { break }
                        bytes.append(byte)
                        index = next
                    }
                    watch.handle = bytes
                default: break
                }
            }
            if watch.descriptor > 0 { watches.append(watch) }
        }
        return watches.sorted { $0.descriptor < $1.descriptor }
    }

    /// A socket's identity and options (stasis_socket_state_t, 160 bytes).
    public struct SocketState: Equatable, Sendable {
        public var domain: Int32 = 0, type: Int32 = 0, socketProtocol: Int32 = 0
        public var options: UInt32 = 0
        public var receiveBuffer: Int32 = 0, sendBuffer: Int32 = 0
        public var address: [UInt8] = []
        /// AF_UNIX: the peer's inode (0: none).
        public var peerInode: UInt32 = 0
        /// UNIX stream: bytes that were waiting to be read on this end; UNIX datagram: the messages, each
        /// as a u32 length and its bytes; TCP listener: its backlog (u32).
        public var queued: [UInt8] = []

        /// A TCP listener's backlog when the image has it, else 0 (restart then uses SOMAXCONN).
        public var listenBacklog: Int32 {
            var reader = ByteReader(queued)
            guard let value = try? reader.read(UInt32.self), value <= UInt32(Int32.max) else { return 0 }
            return Int32(value)
        }

        /// UNIX datagram: the queued messages in order; nil when the bytes do not split into whole messages.
        public var datagrams: [[UInt8]]? {
            var reader = ByteReader(queued)
            var messages: [[UInt8]] = []
            while reader.remaining > 0 {
                guard let length = try? reader.read(UInt32.self), let message = try? reader.readBytes(Int(length)) else { return nil }
                messages.append(message)
            }
            return messages
        }
    }

    public var socketState: SocketState? {
        guard kind == .listeningSocket || kind == .resetSocket, extra.count >= 160 else { return nil }
        var reader = ByteReader(extra)
        var state = SocketState()
        guard let domain = try? reader.read(Int32.self), let type = try? reader.read(Int32.self),
            let socketProtocol = try? reader.read(Int32.self), let options = try? reader.read(UInt32.self),
            let receive = try? reader.read(Int32.self), let send = try? reader.read(Int32.self),
            let length = try? reader.read(UInt32.self), let peer = try? reader.read(UInt32.self),
            let address = try? reader.readBytes(128), length <= 128
        else { return nil }  // validated at decode: 160 bytes
        (state.domain, state.type, state.socketProtocol, state.options) = (domain, type, socketProtocol, options)
        (state.receiveBuffer, state.sendBuffer) = (receive, send)
        state.address = Array(address.prefix(Int(length)))
        state.peerInode = peer
        state.queued = Array(extra.dropFirst(160))
        return state
    }

    /// A pseudo-terminal master's queued bytes (after its 44 bytes of modes and window size: u32 input
    /// bytes, u32 output bytes, then those): what the slave had still to read (input, at most 4096) and
    /// what the master had still to read (output, at most 68 KiB). Empty when the record has none; nil
    /// when the lengths do not add up.
    public var terminalQueues: (input: [UInt8], output: [UInt8])? {
        guard kind == .ptyMaster else { return nil }
        if extra.count == 44 { return ([], []) }
        var reader = ByteReader(Array(extra.dropFirst(44)))
        guard let input = try? reader.read(UInt32.self), let output = try? reader.read(UInt32.self),
            input <= 4096, output <= 68 << 10, Int(input) + Int(output) == reader.remaining,
            let inputBytes = try? reader.readBytes(Int(input)), let outputBytes = try? reader.readBytes(Int(output))
        else { return nil }
        return (inputBytes, outputBytes)
    }

    /// A timerfd's state (stasis_timerfd_state_t).
    public struct TimerState: Equatable, Sendable {
        public var ticks: UInt64 = 0
        public var valueSeconds: Int64 = 0, valueNanoseconds: Int64 = 0
        public var intervalSeconds: Int64 = 0, intervalNanoseconds: Int64 = 0
    }

    public var timerState: TimerState? {
        guard kind == .timerfd else { return nil }
        var reader = ByteReader(extra)
        var state = TimerState()
        guard let ticks = try? reader.read(UInt64.self), let vs = try? reader.read(Int64.self),
            let vn = try? reader.read(Int64.self), let iS = try? reader.read(Int64.self), let iN = try? reader.read(Int64.self)
        else { return nil }  // validated at decode: 40 bytes
        (state.ticks, state.valueSeconds, state.valueNanoseconds, state.intervalSeconds, state.intervalNanoseconds) = (ticks, vs, vn, iS, iN)
        return state
    }

    /// One registration of an epoll instance (stasis_epoll_entry_t).
    public struct EpollEntry: Equatable, Sendable {
        public var fd: Int32
        public var events: UInt32
        public var data: UInt64
        public init(fd: Int32, events: UInt32, data: UInt64) {
            self.fd = fd
            self.events = events
            self.data = data
        }
    }

    public var fd: Int32 = 0
    public var kind: Kind = .regular
    public var statusFlags: UInt32 = 0
    public var descriptorFlags: UInt32 = 0
    public var offset: Int64 = 0
    public var device: UInt64 = 0, inode: UInt64 = 0
    public var size: UInt64 = 0
    public var modificationNanoseconds: Int64 = 0
    public var mode: UInt32 = 0
    public var path: String = ""
    public var objectID: UInt64 = 0
    public var objectFlags: UInt32 = 0
    /// An earlier fd with the same open file description (dup'ed), or -1.
    public var sharesWith: Int32 = -1
    /// Pipe: the buffered bytes. Epoll: the registrations, 16 bytes each.
    public var extra: [UInt8] = []
    /// Deleted files and memfds: where their contents are in the image.
    public var dataOffset: UInt64 = 0
    public var dataBytes: UInt64 = 0
    public var dataCRC: UInt32 = 0

    /// An epoll record's registrations.
    public var epollEntries: [EpollEntry] {
        var reader = ByteReader(extra)
        var entries: [EpollEntry] = []
        while reader.remaining >= 16 {
            guard let fd = try? reader.read(Int32.self), let events = try? reader.read(UInt32.self),
                let data = try? reader.read(UInt64.self)
            else { break }  // unreachable: 16 bytes remain
            entries.append(EpollEntry(fd: fd, events: events, data: data))
        }
        return entries
    }

    public init() {}

    public var isCloseOnExec: Bool { descriptorFlags & 1 != 0 }

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        fd = try reader.read(Int32.self)
        let rawKind = try reader.read(UInt32.self)
        guard let kind = Kind(rawValue: rawKind) else {
            throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "unknown descriptor kind \(rawKind)")
        }
        self.kind = kind
        statusFlags = try reader.read(UInt32.self)
        descriptorFlags = try reader.read(UInt32.self)
        offset = try reader.read(Int64.self)
        device = try reader.read(UInt64.self); inode = try reader.read(UInt64.self)
        size = try reader.read(UInt64.self)
        modificationNanoseconds = try reader.read(Int64.self)
        mode = try reader.read(UInt32.self)
        let pathBytes = Int(try reader.read(UInt32.self))
        objectID = try reader.read(UInt64.self)
        objectFlags = try reader.read(UInt32.self)
        let extraBytes = Int(try reader.read(UInt32.self))
        sharesWith = try reader.read(Int32.self)
        _ = try reader.read(UInt32.self)
        guard sharesWith >= -1, sharesWith < fd else {
            throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd) shares with fd \(sharesWith)")
        }
        guard pathBytes <= 4096 else { throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "path too long") }
        path = try reader.readString(pathBytes)
        guard extraBytes <= 1 << 20, [.pipe, .fifo, .epoll, .timerfd, .terminal, .listeningSocket, .resetSocket, .ptyMaster,
                                      .inotify].contains(kind) || extraBytes == 0,
            kind != .epoll || extraBytes % 16 == 0, kind != .timerfd || extraBytes == 40,
            kind != .terminal || extraBytes == 36, kind != .listeningSocket || extraBytes == 160 || extraBytes == 164,
            kind != .resetSocket || extraBytes >= 160, kind != .ptyMaster || extraBytes == 44 || extraBytes >= 52
        else { throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd): \(extraBytes) extra bytes") }
        extra = try reader.readBytes(extraBytes)
        if kind == .ptyMaster && extraBytes > 44 && terminalQueues == nil {
            throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd): queued terminal bytes do not add up")
        }
        if kind == .resetSocket, let state = socketState, state.type == 2 /* SOCK_DGRAM */, state.datagrams == nil {
            throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd): queued datagrams do not add up")
        }
        guard fd >= 0, fd < 1 << 20 else { throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd)") }
        guard [.inherit, .pipe, .eventfd, .epoll, .timerfd, .unsupported, .signalfd, .memfd, .listeningSocket,
               .resetSocket, .inotify].contains(kind) || path.hasPrefix("/") else {
            throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd) has no absolute path")
        }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(fd); writer.write(kind.rawValue); writer.write(statusFlags); writer.write(descriptorFlags)
        writer.write(offset); writer.write(device); writer.write(inode); writer.write(size)
        writer.write(modificationNanoseconds); writer.write(mode); writer.write(UInt32(path.utf8.count))
        writer.write(objectID); writer.write(objectFlags); writer.write(UInt32(extra.count))
        writer.write(sharesWith); writer.write(UInt32(0))
        writer.write(bytes: Array(path.utf8))
        writer.write(bytes: extra)
    }
}
