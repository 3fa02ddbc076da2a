/// One open descriptor (stasis_file_descriptor_record_t) and its path.
public struct FileDescriptorRecord: Equatable, Sendable {
    public static let fixedSize = 64

    public enum Kind: UInt32, Sendable {
        case inherit = 0  // fd 0-2 on a terminal, pipe or socket: takes restart's own
        case regular = 1  // reopened by path at its offset
        case device = 2   // /dev/null and friends, reopened by path
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
        guard pathBytes <= 4096 else { throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "path too long") }
        path = try reader.readString(pathBytes)
        guard fd >= 0, fd < 1 << 20 else { throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd)") }
        guard kind == .inherit || path.hasPrefix("/") else {
            throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd) has no absolute path")
        }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(fd); writer.write(kind.rawValue); writer.write(statusFlags); writer.write(descriptorFlags)
        writer.write(offset); writer.write(device); writer.write(inode); writer.write(size)
        writer.write(modificationNanoseconds); writer.write(mode); writer.write(UInt32(path.utf8.count))
        writer.write(bytes: Array(path.utf8))
    }
}
