import CStasisABI

/// Where the agent's restore hooks are in the program's memory (stasis_agent_record_t).
public struct AgentRecord: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_agent_record_t>.size
    public var restoreTail: UInt64 = 0
    public var keySlot: UInt64 = 0
    public var restoreThreadTail: UInt64 = 0
    public var stateAddress: UInt64 = 0
    public var triggerSignal: Int32 = 12

    public init() {}

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        restoreTail = try reader.read(UInt64.self)
        stateAddress = try reader.read(UInt64.self)
        triggerSignal = try reader.read(Int32.self)
        _ = try reader.read(UInt32.self)
        restoreThreadTail = try reader.read(UInt64.self)
        keySlot = try reader.read(UInt64.self)
        guard restoreTail >= 0x10000, restoreTail < MemoryAreaRecord.userSpaceTop, stateAddress < MemoryAreaRecord.userSpaceTop,
            restoreThreadTail >= 0x10000, restoreThreadTail < MemoryAreaRecord.userSpaceTop,
            keySlot < MemoryAreaRecord.userSpaceTop,
            (1...64).contains(triggerSignal)
        else { throw .invalidRecord(.agent, at: reader.base, reason: "agent addresses outside user space") }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(restoreTail); writer.write(stateAddress); writer.write(triggerSignal); writer.write(UInt32(0))
        writer.write(restoreThreadTail)
        writer.write(keySlot)
    }
}
