import CStasisABI

/// The last record (stasis_end_record_t): the count of records before it and its own offset prove the
/// file complete; with a key, `mac` is the HMAC-SHA256 of every byte before it (CRC fields as zero).
public struct EndRecord: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_end_record_t>.size
    public static let magic: UInt64 = STASIS_END_MAGIC
    /// Offset of `mac` within the payload: the signature covers the file up to here.
    public static let macOffset = Int(STASIS_END_MAC_OFFSET)
    public static let macBytes = Int(STASIS_MAC_BYTES)
    static let signedFlag: UInt64 = STASIS_END_SIGNED

    public var recordCount: UInt64 = 0
    public var endOffset: UInt64 = 0
    /// The HMAC when the image is signed.
    public var mac: [UInt8]? = nil

    public init(recordCount: UInt64, endOffset: UInt64, mac: [UInt8]? = nil) {
        self.recordCount = recordCount
        self.endOffset = endOffset
        self.mac = mac
    }

    /// Decodes the payload of the END record at `offset` and checks its magic and flags.
    public init(decoding reader: inout ByteReader, at offset: UInt64) throws(ImageError) {
        recordCount = try reader.read(UInt64.self)
        endOffset = try reader.read(UInt64.self)
        let magic = try reader.read(UInt64.self)
        let flags = try reader.read(UInt64.self)
        let mac = try reader.readBytes(EndRecord.macBytes)
        guard magic == EndRecord.magic, flags & ~EndRecord.signedFlag == 0 else {
            throw .invalidRecord(.end, at: offset, reason: "record count or offset does not match")
        }
        self.mac = flags & EndRecord.signedFlag != 0 ? mac : nil
    }

    /// The fields before `mac` (what the signature covers of this payload).
    public func encodeFixed(signed: Bool, into writer: inout ByteWriter) {
        writer.write(recordCount)
        writer.write(endOffset)
        writer.write(EndRecord.magic)
        writer.write(signed ? EndRecord.signedFlag : 0)
    }

    public func encode(into writer: inout ByteWriter) {
        encodeFixed(signed: mac != nil, into: &writer)
        writer.write(bytes: mac ?? [UInt8](repeating: 0, count: EndRecord.macBytes))
    }
}
