/// DELETED and MEMFD: a file the program holds but nobody can open by name. Its contents are the
/// record's page data (size rounded up to the page); object_id = its size, object_flags = a memfd's
/// seals (F_GET_SEALS; 0 for a deleted file).
public struct FileContentsPayload: DescriptorPayloadCoding {
    public var size: UInt64
    public var seals: UInt32

    public init(size: UInt64, seals: UInt32 = 0) {
        self.size = size
        self.seals = seals
    }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        guard fields.objectID <= 4 << 30 else { throw context.invalid("contents of \(fields.objectID) bytes (over 4 GiB)") }
        self.init(size: fields.objectID, seals: fields.objectFlags)
    }

    var fields: DescriptorFields { DescriptorFields(objectID: size, objectFlags: seals) }
}
