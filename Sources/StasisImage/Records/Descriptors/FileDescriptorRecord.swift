/// One open descriptor (stasis_file_descriptor_record_t), its path and its kind's payload.
///
///     fixed 88 bytes | path (path_bytes) | extra (extra_bytes)
///                      object_id, object_flags and extra are the payload: DescriptorPayload
public struct FileDescriptorRecord: Equatable, Sendable {
    public static let fixedSize = 88
    public static let maxPathBytes = 4096
    public static let maxExtraBytes = 1 << 20

    /// STASIS_FD_*. The raw values are written to disk: append new cases, never renumber.
    public enum Kind: UInt32, Sendable {
        case inherit = 0, regular = 1, device = 2, directory = 3, pipe = 4, eventfd = 5, epoll = 6, timerfd = 7
        case terminal = 8, unsupported = 9, signalfd = 10, deleted = 11, memfd = 12, listeningSocket = 13
        case resetSocket = 14, fifo = 15, ptyMaster = 16, inotify = 17
    }

    public var fd: Int32 = 0
    public var statusFlags: UInt32 = 0
    public var descriptorFlags: UInt32 = 0
    public var offset: Int64 = 0
    public var device: UInt64 = 0, inode: UInt64 = 0
    public var size: UInt64 = 0
    public var modificationNanoseconds: Int64 = 0
    public var mode: UInt32 = 0
    public var path: String = ""
    /// An earlier fd with the same open file description (dup'ed), or -1.
    public var sharesWith: Int32 = -1
    public var payload: DescriptorPayload = .regular
    /// Deleted files and memfds: where their contents are in the image.
    public var dataOffset: UInt64 = 0
    public var dataBytes: UInt64 = 0
    public var dataCRC: UInt32 = 0

    public init() {}

    public var kind: Kind { payload.kind }
    public var isCloseOnExec: Bool { descriptorFlags & 1 != 0 }

    /// A deleted file's or memfd's size: the bytes of its contents in the record's page data.
    public var contentsSize: UInt64? {
        switch payload {
        case .deleted(let contents), .memfd(let contents): contents.size
        default: nil
        }
    }

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        fd = try reader.read(Int32.self)
        let rawKind = try reader.read(UInt32.self)
        guard let kind = Kind(rawValue: rawKind) else {
            throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "unknown descriptor kind \(rawKind)")
        }
        statusFlags = try reader.read(UInt32.self)
        descriptorFlags = try reader.read(UInt32.self)
        offset = try reader.read(Int64.self)
        device = try reader.read(UInt64.self); inode = try reader.read(UInt64.self)
        size = try reader.read(UInt64.self)
        modificationNanoseconds = try reader.read(Int64.self)
        mode = try reader.read(UInt32.self)
        let pathBytes = Int(try reader.read(UInt32.self))
        var fields = DescriptorFields()
        fields.objectID = try reader.read(UInt64.self)
        fields.objectFlags = try reader.read(UInt32.self)
        let extraBytes = Int(try reader.read(UInt32.self))
        sharesWith = try reader.read(Int32.self)
        _ = try reader.read(UInt32.self)
        let context = PayloadContext(fd: fd, at: reader.base)
        guard fd >= 0, fd < 1 << 20 else { throw .invalidRecord(.fileDescriptor, at: reader.base, reason: "fd \(fd)") }
        guard sharesWith >= -1, sharesWith < fd else { throw context.invalid("shares with fd \(sharesWith)") }
        guard pathBytes <= Self.maxPathBytes else { throw context.invalid("path too long") }
        guard extraBytes <= Self.maxExtraBytes else { throw context.invalid("\(extraBytes) extra bytes") }
        path = try reader.readString(pathBytes)
        fields.extra = try reader.readBytes(extraBytes)
        payload = try DescriptorPayload.decode(kind, fields, context)
        guard !kind.needsAbsolutePath || path.hasPrefix("/") else { throw context.invalid("no absolute path") }
    }

    public func encode(into writer: inout ByteWriter) {
        let fields = payload.fields
        writer.write(fd); writer.write(kind.rawValue); writer.write(statusFlags); writer.write(descriptorFlags)
        writer.write(offset); writer.write(device); writer.write(inode); writer.write(size)
        writer.write(modificationNanoseconds); writer.write(mode); writer.write(UInt32(path.utf8.count))
        writer.write(fields.objectID); writer.write(fields.objectFlags); writer.write(UInt32(fields.extra.count))
        writer.write(sharesWith); writer.write(UInt32(0))
        writer.write(bytes: Array(path.utf8))
        writer.write(bytes: fields.extra)
    }
}
