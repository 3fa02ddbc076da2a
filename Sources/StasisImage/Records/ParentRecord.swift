import CStasisABI

/// The parent of an incremental image (stasis_parent_record_t), then the parent's file name.
/// Inherited page runs come from the parent, which may itself be incremental: restart follows the
/// chain back to a full image.
public struct ParentRecord: Equatable, Sendable {
    public static let fixedSize = MemoryLayout<stasis_parent_record_t>.size
    public var sequence: UInt64 = 0
    public var timeNanoseconds: UInt64 = 0
    public var pid: Int32 = 0
    /// Images in the chain, this one included (≥ 2).
    public var chainLength: UInt32 = 2
    /// File name in the same directory as the image that names it.
    public var name: String = ""

    public init() {}

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        let at = reader.base
        sequence = try reader.read(UInt64.self)
        timeNanoseconds = try reader.read(UInt64.self)
        pid = try reader.read(Int32.self)
        chainLength = try reader.read(UInt32.self)
        let nameBytes = Int(try reader.read(UInt32.self))
        _ = try reader.read(UInt32.self)
        guard nameBytes <= 255 else { throw .invalidRecord(.parent, at: at, reason: "parent name of \(nameBytes) bytes") }
        name = try reader.readString(nameBytes)
        try validate(at: at)
    }

    public func validate(at offset: UInt64) throws(ImageError) {
        func fail(_ why: String) -> ImageError { .invalidRecord(.parent, at: offset, reason: why) }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { throw fail("bad parent name \"\(name)\"") }
        guard sequence > 0, pid > 0 else { throw fail("bad parent sequence \(sequence) or pid \(pid)") }
        guard chainLength >= 2, chainLength <= 100_000 else { throw fail("bad chain length \(chainLength)") }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(sequence)
        writer.write(timeNanoseconds)
        writer.write(pid)
        writer.write(chainLength)
        writer.write(UInt32(name.utf8.count))
        writer.write(UInt32(0))
        writer.write(bytes: Array(name.utf8))
    }
}
