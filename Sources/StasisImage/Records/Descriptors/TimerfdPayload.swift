/// TIMERFD: object_id = the clock id; the extra bytes are stasis_timerfd_state_t (40 bytes).
public struct TimerfdPayload: DescriptorPayloadCoding {
    public static let stateSize = 40
    public var clock: Int32
    /// Unread expirations.
    public var ticks: UInt64 = 0
    /// Remaining until the next expiration (0: disarmed) and the interval.
    public var valueSeconds: Int64 = 0, valueNanoseconds: Int64 = 0
    public var intervalSeconds: Int64 = 0, intervalNanoseconds: Int64 = 0

    public init(clock: Int32) { self.clock = clock }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        guard fields.extra.count == Self.stateSize else { throw context.invalid("\(fields.extra.count) bytes of timer state") }
        guard fields.objectID <= UInt64(Int32.max) else { throw context.invalid("timerfd clock \(fields.objectID)") }
        clock = Int32(fields.objectID)
        var reader = ByteReader(fields.extra, base: context.at)
        ticks = try reader.read(UInt64.self)
        valueSeconds = try reader.read(Int64.self)
        valueNanoseconds = try reader.read(Int64.self)
        intervalSeconds = try reader.read(Int64.self)
        intervalNanoseconds = try reader.read(Int64.self)
    }

    var fields: DescriptorFields {
        var writer = ByteWriter()
        writer.write(ticks); writer.write(valueSeconds); writer.write(valueNanoseconds)
        writer.write(intervalSeconds); writer.write(intervalNanoseconds)
        return DescriptorFields(objectID: UInt64(clock), extra: writer.bytes)
    }
}
