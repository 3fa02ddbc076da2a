// FREEZE WINDOW: see RawSyscall.swift.

/// Reads small /proc files whole into arena memory.
enum ProcFile {
    /// Reads `path` into `buffer` (NUL-terminated); returns the byte count or -errno.
    /// -E2BIG when the file does not fit.
    @_noAllocation @_noLocks
    static func read(_ path: UnsafePointer<CChar>, into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let fd = RawSyscall.open(path, RawFlag.readOnly | RawFlag.closeOnExec)
        if fd < 0 { return fd }
        var total = 0
        while true {
            guard total < capacity - 1 else {
                RawSyscall.close(Int32(fd))
                return -RawErrno.tooBig
            }
            let n = RawSyscall.read(Int32(fd), buffer + total, capacity - 1 - total)
            if n == -RawErrno.interrupted { continue }
            if n < 0 {
                RawSyscall.close(Int32(fd))
                return n
            }
            if n == 0 { break }
            total += n
        }
        RawSyscall.close(Int32(fd))
        buffer.storeBytes(of: 0, toByteOffset: total, as: UInt8.self)
        return total
    }

    @_noAllocation @_noLocks
    static func read(literal path: StaticString, into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        read(RawSyscall.cString(path), into: buffer, capacity: capacity)
    }
}

/// A cursor over bytes that parses without allocating.
struct ByteCursor {
    let bytes: UnsafePointer<UInt8>
    let count: Int
    var index = 0

    @_noAllocation @_noLocks
    init(_ bytes: UnsafePointer<UInt8>, count: Int) {
        self.bytes = bytes
        self.count = count
    }

    var atEnd: Bool { index >= count }

    var current: UInt8 { index < count ? bytes[index] : 0 }

    @_noAllocation @_noLocks
    mutating func skip(_ byte: UInt8) { while index < count && bytes[index] == byte { index += 1 } }

    @_noAllocation @_noLocks
    mutating func skipPast(_ byte: UInt8) {
        while index < count && bytes[index] != byte { index += 1 }
        if index < count { index += 1 }
    }

    /// Hex digits; nil if none or overflow.
    @_noAllocation @_noLocks
    mutating func hex() -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        while index < count {
            let c = bytes[index]
            let d: UInt64
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt64(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt64(c - UInt8(ascii: "A") + 10)
            default: return digits > 0 ? value : nil
            }
            guard value >> 60 == 0 else { return nil }
            value = value << 4 | d
            digits += 1
            index += 1
        }
        return digits > 0 ? value : nil
    }

    /// Decimal digits with an optional leading '-'; nil if none or overflow.
    @_noAllocation @_noLocks
    mutating func decimal() -> Int64? {
        var negative = false
        if current == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        var value: Int64 = 0
        var digits = 0
        while index < count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(bytes[index] - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = s
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }
}
