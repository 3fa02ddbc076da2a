import CStasisABI

/// Every signal's disposition (stasis_signal_actions_record_t): signals 1...64.
public struct SignalActionsRecord: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_signal_actions_record_t>.size

    public struct Action: Equatable, Sendable {
        public var handler: UInt64 = 0  // 0 SIG_DFL, 1 SIG_IGN, else an address
        public var flags: UInt64 = 0
        public var restorer: UInt64 = 0
        public var mask: UInt64 = 0
        public init() {}
    }

    public var actions = [Action](repeating: Action(), count: 64)

    public init() {}

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        for i in 0..<64 {
            actions[i].handler = try reader.read(UInt64.self)
            actions[i].flags = try reader.read(UInt64.self)
            actions[i].restorer = try reader.read(UInt64.self)
            actions[i].mask = try reader.read(UInt64.self)
            guard actions[i].handler < MemoryAreaRecord.userSpaceTop, actions[i].restorer < MemoryAreaRecord.userSpaceTop else {
                throw .invalidRecord(.signalActions, at: reader.base, reason: "handler of signal \(i + 1) outside user space")
            }
        }
    }

    public func encode(into writer: inout ByteWriter) {
        for a in actions { writer.write(a.handler); writer.write(a.flags); writer.write(a.restorer); writer.write(a.mask) }
    }
}

/// A POSIX timer (stasis_posix_timer_record_t, 64 bytes).
public struct PosixTimerRecord: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_posix_timer_record_t>.size
    public var id: Int32 = 0, clockID: Int32 = 0, signal: Int32 = 0, notify: Int32 = 0, tid: Int32 = 0, overrun: Int32 = 0
    public var value: UInt64 = 0
    public var intervalSeconds: Int64 = 0, intervalNanoseconds: Int64 = 0
    public var remainingSeconds: Int64 = 0, remainingNanoseconds: Int64 = 0

    public init() {}

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        id = try reader.read(Int32.self); clockID = try reader.read(Int32.self); signal = try reader.read(Int32.self)
        notify = try reader.read(Int32.self); tid = try reader.read(Int32.self); overrun = try reader.read(Int32.self)
        value = try reader.read(UInt64.self)
        intervalSeconds = try reader.read(Int64.self); intervalNanoseconds = try reader.read(Int64.self)
        remainingSeconds = try reader.read(Int64.self); remainingNanoseconds = try reader.read(Int64.self)
        guard id >= 0, (0...64).contains(signal), notify & ~7 == 0 else {
            throw .invalidRecord(.posixTimer, at: reader.base, reason: "timer \(id): signal \(signal), notify \(notify)")
        }
    }
}

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
