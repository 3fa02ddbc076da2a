/// EVENTFD: object_id = the counter, object_flags = STASIS_EVENTFD_SEMAPHORE when EFD_SEMAPHORE.
public struct EventfdPayload: DescriptorPayloadCoding {
    public static let semaphoreFlag: UInt32 = 1  // STASIS_EVENTFD_SEMAPHORE
    public var counter: UInt64
    public var isSemaphore: Bool

    public init(counter: UInt64, isSemaphore: Bool) {
        self.counter = counter
        self.isSemaphore = isSemaphore
    }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        guard fields.objectFlags & ~Self.semaphoreFlag == 0 else {
            throw context.invalid("eventfd flags 0x\(String(fields.objectFlags, radix: 16))")
        }
        self.init(counter: fields.objectID, isSemaphore: fields.objectFlags & Self.semaphoreFlag != 0)
    }

    var fields: DescriptorFields { DescriptorFields(objectID: counter, objectFlags: isSemaphore ? Self.semaphoreFlag : 0) }
}
