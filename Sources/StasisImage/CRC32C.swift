import CStasisABI

/// CRC32C (Castagnoli) as the image uses it for headers, payloads and page data (stasis_image_abi.h).
public struct CRC32C: Sendable {
    private var state = stasis_crc32c_begin()

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        state = stasis_crc32c_update(state, base, UInt(bytes.count))
    }

    public var value: UInt32 { stasis_crc32c_end(state) }

    public static func of(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }
}
