// Parsers shared by the agent's freeze window and the tests. No allocation, no Foundation, no syscalls:
// @inlinable so that the agent's @_noAllocation checks (and its -wmo build) see every body.
/// A cursor over bytes that parses without allocating.
public struct ByteCursor {
    public let bytes: UnsafePointer<UInt8>
    public let count: Int
    public var index = 0

    @inlinable @_noAllocation @_noLocks
    public init(_ bytes: UnsafePointer<UInt8>, count: Int) {
        self.bytes = bytes
        self.count = count
    }

    @inlinable public var atEnd: Bool { index >= count }

    @inlinable public var current: UInt8 { index < count ? bytes[index] : 0 }

    @inlinable @_noAllocation @_noLocks
    public mutating func skip(_ byte: UInt8) { while index < count && bytes[index] == byte { index += 1 } }

    @inlinable @_noAllocation @_noLocks
    public mutating func skipPast(_ byte: UInt8) {
        while index < count && bytes[index] != byte { index += 1 }
        if index < count { index += 1 }
    }

    /// The line at the cursor (without its newline) as a cursor of its own, moving past it; nil at the end.
    @inlinable @_noAllocation @_noLocks
    public mutating func nextLine() -> ByteCursor? {
        guard index < count else { return nil }
        let start = index
        while index < count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
        let line = ByteCursor(bytes + start, count: index - start)
        if index < count { index += 1 }
        return line
    }

    /// Hex digits; nil if none or overflow.
    @inlinable @_noAllocation @_noLocks
    public mutating func hex() -> UInt64? {
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
    @inlinable @_noAllocation @_noLocks
    public mutating func decimal() -> Int64? {
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

    /// Consumes `word` if the bytes at the cursor are exactly it.
    @inlinable @_noAllocation @_noLocks
    public mutating func skipWord(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard count - index >= n else { return false }
        for i in 0..<n where bytes[index + i] != word.utf8Start[i] { return false }
        index += n
        return true
    }
}
