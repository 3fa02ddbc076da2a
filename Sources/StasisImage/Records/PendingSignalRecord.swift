import CStasisABI

/// One instance of a signal pending at the checkpoint, with its siginfo (stasis_pending_signal_record_t,
/// 144 bytes). Records come in queue order; the restorer queues them again in that order.
public struct PendingSignalRecord: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_pending_signal_record_t>.size
    /// Set in `flags`: the instance was in the process's queue, not in one thread's.
    public static let processDirected: UInt32 = 1
    public var tid: Int32 = 0
    public var flags: UInt32 = 0
    public var signal: Int32 = 0
    /// The kernel's siginfo_t, 128 bytes.
    public var siginfo: [UInt8] = [UInt8](repeating: 0, count: 128)

    public init() {}

    public var isProcessDirected: Bool { flags & Self.processDirected != 0 }
    public var code: Int32 { field(8) }
    public var senderPID: Int32 { field(16) }
    public var senderUID: UInt32 { UInt32(bitPattern: field(20)) }
    /// si_value (sival_ptr; sival_int is its low half).
    public var value: UInt64 { UInt64(UInt32(bitPattern: field(24))) | UInt64(UInt32(bitPattern: field(28))) << 32 }

    private func field(_ offset: Int) -> Int32 {
        Int32(bitPattern: UInt32(siginfo[offset]) | UInt32(siginfo[offset + 1]) << 8 | UInt32(siginfo[offset + 2]) << 16
            | UInt32(siginfo[offset + 3]) << 24)
    }

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        tid = try reader.read(Int32.self)
        flags = try reader.read(UInt32.self)
        signal = try reader.read(Int32.self)
        _ = try reader.read(UInt32.self)  // reserved
        siginfo = try reader.readBytes(128)
        try validate(at: reader.base)
    }

    /// What the restorer relies on (rst collect_record checks the same).
    public func validate(at offset: UInt64 = 0) throws(ImageError) {
        guard (1...64).contains(signal), signal != 9, signal != 19 else {
            throw .invalidRecord(.pendingSignal, at: offset, reason: "signal \(signal)")
        }
        guard field(0) == signal else {
            throw .invalidRecord(.pendingSignal, at: offset, reason: "siginfo is for signal \(field(0)), not \(signal)")
        }
        guard flags & ~Self.processDirected == 0, tid > 0 else {
            throw .invalidRecord(.pendingSignal, at: offset, reason: "flags 0x\(String(flags, radix: 16)), tid \(tid)")
        }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(tid)
        writer.write(flags)
        writer.write(signal)
        writer.write(UInt32(0))
        writer.write(bytes: siginfo)
    }
}
