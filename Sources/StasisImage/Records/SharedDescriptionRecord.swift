import CStasisABI

/// In a tree member image: descriptor `fd` is the same open file description as `ownerFD` of process
/// `ownerPID`, a member earlier in the manifest (stasis_shared_description_record_t, 16 bytes). Restart
/// gives both one description, made from the owner's FILE_DESCRIPTOR record.
public struct SharedDescriptionRecord: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_shared_description_record_t>.size
    public var fd: Int32 = 0
    public var ownerPID: Int32 = 0
    public var ownerFD: Int32 = 0

    public init(fd: Int32 = 0, ownerPID: Int32 = 0, ownerFD: Int32 = 0) {
        self.fd = fd
        self.ownerPID = ownerPID
        self.ownerFD = ownerFD
    }

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        let at = reader.base
        fd = try reader.read(Int32.self)
        ownerPID = try reader.read(Int32.self)
        ownerFD = try reader.read(Int32.self)
        _ = try reader.read(UInt32.self)
        guard fd >= 0, ownerFD >= 0, ownerPID > 0 else {
            throw .invalidRecord(.sharedDescription, at: at, reason: "fd \(fd), owner \(ownerPID) fd \(ownerFD)")
        }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(fd)
        writer.write(ownerPID)
        writer.write(ownerFD)
        writer.write(UInt32(0))
    }
}
