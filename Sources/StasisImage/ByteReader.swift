/// Reads little-endian fields from bytes; running short throws `.truncated` and never traps.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int = 0
    /// Where `bytes[0]` sits in the image file, for error messages.
    public let base: UInt64

    public init(_ bytes: [UInt8], base: UInt64 = 0) {
        self.bytes = bytes
        self.base = base
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func read<T: FixedWidthInteger>(_: T.Type) throws(ImageError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(at: base + UInt64(offset)) }
        var value: T = 0
        for i in 0..<size { value |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
        offset += size
        return value
    }

    public mutating func readBytes(_ count: Int) throws(ImageError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated(at: base + UInt64(offset)) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A fixed-size NUL-padded text field.
    public mutating func readFixedString(_ count: Int) throws(ImageError) -> String {
        let raw = try readBytes(count)
        return String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    public mutating func readString(_ count: Int) throws(ImageError) -> String {
        String(decoding: try readBytes(count), as: UTF8.self)
    }

    public mutating func skip(_ count: Int) throws(ImageError) {
        guard count >= 0, remaining >= count else { throw .truncated(at: base + UInt64(offset)) }
        offset += count
    }
}

/// Appends little-endian fields; the mirror of `ByteReader`.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        for i in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }

    public mutating func write(bytes more: [UInt8]) { bytes.append(contentsOf: more) }

    public mutating func writeFixedString(_ text: String, count: Int) {
        var raw = Array(text.utf8.prefix(count - 1))
        raw += [UInt8](repeating: 0, count: count - raw.count)
        bytes += raw
    }

    public mutating func pad(toMultipleOf alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
}
