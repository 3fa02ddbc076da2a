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
