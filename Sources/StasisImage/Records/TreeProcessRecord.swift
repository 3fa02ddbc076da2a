import CStasisABI

/// One process of a tree checkpoint, in the manifest (stasis_tree_process_record_t, 72 bytes).
public struct TreeProcessRecord: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_tree_process_record_t>.size

    public enum State: UInt32, Sendable, CustomStringConvertible {
        /// Running or sleeping: has a member image.
        case running = 0
        /// Stopped by a signal: has a member image, comes back stopped.
        case stopped = 1
        /// Exited and not yet reaped: no image; comes back as a zombie with `exitStatus`.
        case zombie = 2

        public var description: String {
            switch self {
            case .running: return "running"
            case .stopped: return "stopped"
            case .zombie: return "zombie"
            }
        }
    }

    public struct Flags: OptionSet, Equatable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let root = Flags(rawValue: STASIS_TREE_ROOT)
        public static let childSubreaper = Flags(rawValue: STASIS_TREE_CHILD_SUBREAPER)
        /// The process group is outside the tree (the root's job's): restart's own group.
        public static let ownGroup = Flags(rawValue: STASIS_TREE_OWN_GROUP)
        /// The session is outside the tree: restart's own session.
        public static let ownSession = Flags(rawValue: STASIS_TREE_OWN_SESSION)
        static let all: UInt32 = STASIS_TREE_ROOT | STASIS_TREE_CHILD_SUBREAPER | STASIS_TREE_OWN_GROUP | STASIS_TREE_OWN_SESSION
    }

    public var pid: Int32 = 0
    public var ppid: Int32 = 0
    public var pgid: Int32 = 0
    public var sid: Int32 = 0
    public var state = State.running
    public var flags = Flags()
    /// Zombies: the status wait() reports (waitpid encoding).
    public var exitStatus: Int32 = 0
    /// The signal the parent gets when this process exits (SIGCHLD, or 0).
    public var exitSignal: Int32 = 17
    public var parentDeathSignal: Int32 = 0
    public var comm: String = ""
    /// Size and header CRC of the member image PID.stasis (0 for a zombie).
    public var imageBytes: UInt64 = 0
    public var imageHeaderCRC: UInt32 = 0

    public init() {}

    public var isRoot: Bool { flags.contains(.root) }
    public var hasImage: Bool { state != .zombie }
    /// The member image's name inside the tree directory.
    public var imageName: String { "\(pid).stasis" }

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        let at = reader.base
        func fail(_ why: String) -> ImageError { .invalidRecord(.treeProcess, at: at, reason: why) }
        pid = try reader.read(Int32.self)
        ppid = try reader.read(Int32.self)
        pgid = try reader.read(Int32.self)
        sid = try reader.read(Int32.self)
        let rawState = try reader.read(UInt32.self)
        guard let known = State(rawValue: rawState) else { throw fail("state \(rawState)") }
        state = known
        let rawFlags = try reader.read(UInt32.self)
        guard rawFlags & ~Flags.all == 0 else { throw fail("flags 0x\(String(rawFlags, radix: 16))") }
        flags = Flags(rawValue: rawFlags)
        exitStatus = try reader.read(Int32.self)
        exitSignal = try reader.read(Int32.self)
        parentDeathSignal = try reader.read(Int32.self)
        _ = try reader.read(UInt32.self)
        comm = try reader.readFixedString(16)
        imageBytes = try reader.read(UInt64.self)
        imageHeaderCRC = try reader.read(UInt32.self)
        _ = try reader.read(UInt32.self)
        guard pid > 0, ppid >= 0, pgid > 0, sid >= 0 else { throw fail("ids \(pid)/\(ppid)/\(pgid)/\(sid)") }
        guard (0...64).contains(exitSignal), (0...64).contains(parentDeathSignal) else {
            throw fail("exit signal \(exitSignal), death signal \(parentDeathSignal)")
        }
        guard hasImage == (imageBytes > 0) else { throw fail("a \(state) process with an image of \(imageBytes) bytes") }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(pid)
        writer.write(ppid)
        writer.write(pgid)
        writer.write(sid)
        writer.write(state.rawValue)
        writer.write(flags.rawValue)
        writer.write(exitStatus)
        writer.write(exitSignal)
        writer.write(parentDeathSignal)
        writer.write(UInt32(0))
        writer.writeFixedString(comm, count: 16)
        writer.write(imageBytes)
        writer.write(imageHeaderCRC)
        writer.write(UInt32(0))
    }
}
