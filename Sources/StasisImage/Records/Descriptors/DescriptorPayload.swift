/// What a FILE_DESCRIPTOR record holds beyond the fields every descriptor has: one case per kind, each
/// with its own struct, decoded and validated when the record is (a payload that does not fit its
/// kind is an `ImageError` then, never later). On disk the payload is `object_id`, `object_flags`
/// and the extra bytes after the path (IMAGE-FORMAT.md 4.6); `DescriptorFields` carries those three.
public enum DescriptorPayload: Equatable, Sendable {
    case inherit                              // fd 0-2 on a terminal, pipe or socket: takes restart's own
    case regular                              // reopened by path at its offset
    case device                               // /dev/null and friends, reopened by path
    case directory                            // reopened by path at its offset
    case pipe(PipePayload)                    // Pipes.swift at restart
    case eventfd(EventfdPayload)
    case epoll(EpollPayload)
    case timerfd(TimerfdPayload)
    case terminal(TerminalPayload)            // restart's own terminal takes its place
    case unsupported                          // not saved (--skip-unsupported): /dev/null takes its place
    case signalfd(SignalfdPayload)
    case deleted(FileContentsPayload)         // contents in the record's page data; recreated unlinked
    case memfd(FileContentsPayload)
    case listeningSocket(SocketPayload)       // re-created and bound
    case resetSocket(SocketPayload)           // comes back with its peer gone, or as a socketpair
    case fifo(PipePayload)                    // reopened by path, refilled
    case ptyMaster(PtyMasterPayload)
    case inotify(InotifyPayload)

    public var kind: FileDescriptorRecord.Kind {
        switch self {
        case .inherit: .inherit
        case .regular: .regular
        case .device: .device
        case .directory: .directory
        case .pipe: .pipe
        case .eventfd: .eventfd
        case .epoll: .epoll
        case .timerfd: .timerfd
        case .terminal: .terminal
        case .unsupported: .unsupported
        case .signalfd: .signalfd
        case .deleted: .deleted
        case .memfd: .memfd
        case .listeningSocket: .listeningSocket
        case .resetSocket: .resetSocket
        case .fifo: .fifo
        case .ptyMaster: .ptyMaster
        case .inotify: .inotify
        }
    }

    /// Decodes and validates the payload of a record of `kind`.
    static func decode(_ kind: FileDescriptorRecord.Kind, _ fields: DescriptorFields, _ context: PayloadContext)
        throws(ImageError) -> DescriptorPayload
    {
        if !kind.hasExtra && !fields.extra.isEmpty { throw context.invalid("\(fields.extra.count) extra bytes") }
        switch kind {
        case .inherit: return .inherit
        case .regular: return .regular
        case .device: return .device
        case .directory: return .directory
        case .unsupported: return .unsupported
        case .pipe: return .pipe(try PipePayload(fields, context))
        case .fifo: return .fifo(try PipePayload(fields, context))
        case .eventfd: return .eventfd(try EventfdPayload(fields, context))
        case .epoll: return .epoll(try EpollPayload(fields, context))
        case .timerfd: return .timerfd(try TimerfdPayload(fields, context))
        case .terminal: return .terminal(try TerminalPayload(fields, context))
        case .signalfd: return .signalfd(try SignalfdPayload(fields, context))
        case .deleted: return .deleted(try FileContentsPayload(fields, context))
        case .memfd: return .memfd(try FileContentsPayload(fields, context))
        case .listeningSocket: return .listeningSocket(try SocketPayload(fields, context, isListening: true))
        case .resetSocket: return .resetSocket(try SocketPayload(fields, context, isListening: false))
        case .ptyMaster: return .ptyMaster(try PtyMasterPayload(fields, context))
        case .inotify: return .inotify(try InotifyPayload(fields, context))
        }
    }

    /// `object_id`, `object_flags` and the extra bytes as written.
    var fields: DescriptorFields {
        switch self {
        case .inherit, .regular, .device, .directory, .unsupported: DescriptorFields()
        case .pipe(let p), .fifo(let p): p.fields
        case .eventfd(let p): p.fields
        case .epoll(let p): p.fields
        case .timerfd(let p): p.fields
        case .terminal(let p): p.fields
        case .signalfd(let p): p.fields
        case .deleted(let p), .memfd(let p): p.fields
        case .listeningSocket(let p), .resetSocket(let p): p.fields
        case .ptyMaster(let p): p.fields
        case .inotify(let p): p.fields
        }
    }
}

/// The kind-specific fields of a FILE_DESCRIPTOR record as they are on disk.
public struct DescriptorFields: Equatable, Sendable {
    public var objectID: UInt64 = 0
    public var objectFlags: UInt32 = 0
    public var extra: [UInt8] = []

    public init(objectID: UInt64 = 0, objectFlags: UInt32 = 0, extra: [UInt8] = []) {
        self.objectID = objectID
        self.objectFlags = objectFlags
        self.extra = extra
    }
}

/// Which record a payload belongs to, for its error messages.
struct PayloadContext {
    let fd: Int32
    let at: UInt64

    func invalid(_ reason: String) -> ImageError { .invalidRecord(.fileDescriptor, at: at, reason: "fd \(fd): \(reason)") }
}

/// One kind's payload: decoded (and validated) from the on-disk fields, and written back to them.
protocol DescriptorPayloadCoding: Equatable, Sendable {
    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError)
    var fields: DescriptorFields { get }
}

extension FileDescriptorRecord.Kind {
    /// Kinds whose records may carry bytes after the path.
    var hasExtra: Bool {
        switch self {
        case .pipe, .fifo, .epoll, .timerfd, .terminal, .listeningSocket, .resetSocket, .ptyMaster, .inotify: true
        default: false
        }
    }

    /// Kinds that name no file: their path is what the kernel shows (`pipe:[…]`, `anon_inode:…`).
    var needsAbsolutePath: Bool {
        switch self {
        case .inherit, .pipe, .eventfd, .epoll, .timerfd, .unsupported, .signalfd, .memfd, .listeningSocket,
            .resetSocket, .inotify: false
        default: true
        }
    }
}
