import CStasisABI

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
