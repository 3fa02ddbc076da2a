/// SIGNALFD: object_id = the signal mask (bit n-1 for signal n, as fdinfo's sigmask shows it).
public struct SignalfdPayload: DescriptorPayloadCoding {
    public var mask: UInt64

    public init(mask: UInt64) { self.mask = mask }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) { self.init(mask: fields.objectID) }

    var fields: DescriptorFields { DescriptorFields(objectID: mask) }
}
