import CStasisABI

/// HMAC-SHA256 over an image as the writers sign it (stasis_end_record_t): every byte before the END
/// record's mac, read with the CRC fields (header_crc, each record's payload_crc and data_crc) as zero,
/// because a writer learns a CRC only after the bytes it covers have gone into the signature.
struct ImageMAC {
    private var state = stasis_hmac_t()

    init(key: [UInt8]) {
        key.withUnsafeBufferPointer { stasis_hmac_init(&state, $0.baseAddress!, $0.count) }
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { if let base = $0.baseAddress { stasis_hmac_update(&state, base, $0.count) } }
    }

    mutating func finish() -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: EndRecord.macBytes)
        mac.withUnsafeMutableBufferPointer { stasis_hmac_final(&state, $0.baseAddress!) }
        return mac
    }
}

extension Image {
    /// Checks the END record's HMAC-SHA256 with `key`: every byte before the mac, CRC fields as zero.
    public func verifySignature(from source: ImageSource, key: [UInt8]) throws(ImageError) {
        try verifyEndSignature(signature, endOffset: endOffset, recordOffsets: recordOffsets, what: "the image",
                               from: source, key: key)
    }
}

extension TreeManifest {
    /// Checks the manifest's END HMAC-SHA256 with `key`, as `Image.verifySignature` does for an image.
    public func verifySignature(from source: ImageSource, key: [UInt8]) throws(ImageError) {
        try verifyEndSignature(signature, endOffset: endOffset, recordOffsets: recordOffsets, what: "the tree manifest",
                               from: source, key: key)
    }
}

/// The signature check of any file written by an `ImageWriter` (an image or a tree manifest): `recordOffsets`
/// lists every record header, END included, whose CRC fields are read as zero.
func verifyEndSignature(_ signature: [UInt8]?, endOffset: UInt64, recordOffsets: [UInt64], what: String,
                        from source: ImageSource, key: [UInt8]) throws(ImageError) {
    guard let signature else { throw .signature("\(what) is not signed") }
    var mac = ImageMAC(key: key)
    let covered = endOffset + UInt64(RecordHeader.size + EndRecord.macOffset)
    let crcFields = UInt64(RecordHeader.size - RecordHeader.checkedBytes)
    var zeroed: [(UInt64, UInt64)] = [(UInt64(ImageHeader.crcOffset), UInt64(ImageHeader.crcOffset) + 4)]
    for offset in recordOffsets {
        zeroed.append((offset + UInt64(RecordHeader.checkedBytes), offset + UInt64(RecordHeader.checkedBytes) + crcFields))
    }
    var position: UInt64 = 0
    var next = 0
    let chunk: UInt64 = 4 << 20
    while position < covered {
        let count = Int(min(chunk, covered - position))
        var bytes = try source.bytes(at: position, count: count)
        while next < zeroed.count && zeroed[next].0 < position + UInt64(count) {
            let (start, end) = zeroed[next]
            for i in max(start, position)..<min(end, position + UInt64(count)) { bytes[Int(i - position)] = 0 }
            if end <= position + UInt64(count) { next += 1 } else { break }
        }
        mac.update(bytes)
        position += UInt64(count)
    }
    let computed = mac.finish()
    var difference: UInt8 = 0
    for i in 0..<EndRecord.macBytes { difference |= computed[i] ^ signature[i] }  // constant time
    guard difference == 0 else {
        throw .signature("the signature does not match this key: \(what) was changed, or signed with another key")
    }
}
