/// Where an `ImageWriter` puts bytes: a file in the launcher (`stasis compact`), an array in tests.
/// StasisImage itself does no I/O.
public protocol ImageSink {
    /// Appends `bytes` at the end.
    mutating func append(_ bytes: [UInt8]) throws(ImageError)
    /// Overwrites bytes appended earlier (a record's CRC fields, once its data has been streamed).
    mutating func overwrite(_ bytes: [UInt8], at offset: UInt64) throws(ImageError)
}

/// An image built in memory.
public struct ByteArraySink: ImageSink {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func append(_ more: [UInt8]) { bytes.append(contentsOf: more) }

    public mutating func overwrite(_ more: [UInt8], at offset: UInt64) {
        bytes.replaceSubrange(Int(offset)..<Int(offset) + more.count, with: more)
    }
}

/// Frames an image for every Swift writer that may allocate (compaction, tests, fuzz seeds): header,
/// records with their padding and CRCs, END, and the HMAC when there is a key. The agent's
/// allocation-free writer (StasisAgent Freeze/ImageFile.swift) frames the same way from the same
/// stasis_image_abi.h constants; Tests/StasisImageTests checks the layouts agree.
///
/// A record is `beginRecord` (header with CRC fields zero, payload, padding), `writeData` until its
/// page data is complete, `endRecord` (the two CRCs overwrite the zeros). The signature sees every
/// byte as first written, the CRC fields as zero, as the agent's does.
public struct ImageWriter<Sink: ImageSink> {
    public private(set) var sink: Sink
    /// Bytes written so far: the offset of the next byte.
    public private(set) var offset: UInt64 = 0
    /// Records completed so far (END excluded).
    public private(set) var recordCount: UInt64 = 0
    private var mac: ImageMAC?
    private var recordStart: UInt64 = 0
    private var payloadCRC: UInt32 = 0
    private var dataCRC = CRC32C()
    private var dataBytes: UInt64 = 0
    private var dataLeft: UInt64 = 0
    private var dataChecksummed = true
    private var inRecord = false

    public init(sink: Sink, key: [UInt8]? = nil) {
        self.sink = sink
        mac = key.map { ImageMAC(key: $0) }
    }

    /// Appends `bytes`; the signature sees `signedAs` instead when given (same length, CRC fields zero).
    private mutating func emit(_ bytes: [UInt8], signedAs: [UInt8]? = nil) throws(ImageError) {
        mac?.update(signedAs ?? bytes)
        try sink.append(bytes)
        offset += UInt64(bytes.count)
    }

    private mutating func pad(to boundary: UInt64) throws(ImageError) {
        let gap = align(offset, to: boundary) - offset
        if gap > 0 { try emit([UInt8](repeating: 0, count: Int(gap))) }
    }

    /// The header and program path from `header`, with its CRC.
    public mutating func writeHeader(_ header: ImageHeader) throws(ImageError) {
        var w = ByteWriter()
        header.encode(into: &w)
        try writeHeader(bytes: w.bytes)
    }

    /// An existing image's header and program path as they are, up to its first record (compaction
    /// keeps the identity: same header bytes, same CRC).
    public mutating func writeHeader(bytes: [UInt8]) throws(ImageError) {
        precondition(offset == 0 && bytes.count >= ImageHeader.size, "the header comes first")
        var signed = bytes
        for i in ImageHeader.crcOffset..<ImageHeader.crcOffset + 4 { signed[i] = 0 }
        try emit(bytes, signedAs: signed)
        try pad(to: RecordHeader.alignment)
    }

    /// Starts a record of `kind`: header and payload, then padding to where its `dataBytes` of page
    /// data go (a multiple of the page size; 0 for none).
    public mutating func beginRecord(kind: UInt32, payload: [UInt8], dataBytes: UInt64 = 0) throws(ImageError) {
        precondition(!inRecord && dataBytes % RecordHeader.pageSize == 0)
        recordStart = offset
        let payloadEnd = offset + UInt64(RecordHeader.size + payload.count)
        let dataOffset = dataBytes > 0 ? align(payloadEnd, to: RecordHeader.pageSize) : 0
        let header = RecordHeader(kind: kind, payloadBytes: UInt32(payload.count), dataOffset: dataOffset, dataBytes: dataBytes)
        payloadCRC = header.computePayloadCRC(payload)
        dataCRC = CRC32C()
        self.dataBytes = dataBytes
        dataChecksummed = kind != RecordKind.pageBlocks.rawValue  // blocks carry their own CRCs (IMAGE-FORMAT.md 4.11)
        dataLeft = dataBytes
        inRecord = true
        var w = ByteWriter()
        header.encode(into: &w)  // CRC fields zero until endRecord
        try emit(w.bytes)
        try emit(payload)
        try pad(to: dataBytes > 0 ? RecordHeader.pageSize : RecordHeader.alignment)
    }

    /// Page data of the current record, in order.
    public mutating func writeData(_ chunk: [UInt8]) throws(ImageError) {
        precondition(inRecord && UInt64(chunk.count) <= dataLeft, "more page data than the record announced")
        dataCRC.update(chunk)
        try emit(chunk)
        dataLeft -= UInt64(chunk.count)
    }

    /// Completes the current record: its CRCs go into its header.
    public mutating func endRecord() throws(ImageError) {
        precondition(inRecord && dataLeft == 0, "less page data than the record announced")
        var w = ByteWriter()
        w.write(payloadCRC)
        w.write(dataBytes > 0 && dataChecksummed ? dataCRC.value : UInt32(0))
        try sink.overwrite(w.bytes, at: recordStart + UInt64(RecordHeader.checkedBytes))
        inRecord = false
        recordCount += 1
    }

    /// A whole record at once.
    public mutating func appendRecord(kind: UInt32, payload: [UInt8], pageData: [UInt8] = []) throws(ImageError) {
        try beginRecord(kind: kind, payload: payload, dataBytes: UInt64(pageData.count))
        if !pageData.isEmpty { try writeData(pageData) }
        try endRecord()
    }

    /// The END record (signed when there is a key); returns the sink holding the complete image.
    public mutating func finish() throws(ImageError) -> Sink {
        precondition(!inRecord)
        let end = EndRecord(recordCount: recordCount, endOffset: offset)
        var fixed = ByteWriter()
        end.encodeFixed(signed: mac != nil, into: &fixed)
        var header = RecordHeader(kind: RecordKind.end.rawValue, payloadBytes: UInt32(EndRecord.size))
        var w = ByteWriter()
        header.encode(into: &w)
        try emit(w.bytes)
        try emit(fixed.bytes)
        let signature = mac?.finish() ?? [UInt8](repeating: 0, count: EndRecord.macBytes)
        mac = nil  // the mac itself is not signed
        try emit(signature)
        header.payloadCRC = header.computePayloadCRC(fixed.bytes + signature)
        var crc = ByteWriter()
        crc.write(header.payloadCRC)
        try sink.overwrite(crc.bytes, at: end.endOffset + UInt64(RecordHeader.checkedBytes))
        return sink
    }
}

/// An image in memory from records, for tests and fuzz seeds (an array sink cannot fail).
public struct ImageEncoder {
    public private(set) var writer: ImageWriter<ByteArraySink>

    public init(header: ImageHeader, key: [UInt8]? = nil) {
        writer = ImageWriter(sink: ByteArraySink(), key: key)
        try! writer.writeHeader(header)
    }

    public mutating func append(kind: RecordKind, payload: [UInt8], pageData: [UInt8] = []) {
        append(rawKind: kind.rawValue, payload: payload, pageData: pageData)
    }

    /// A record of any kind number, also one this version does not know.
    public mutating func append(rawKind: UInt32, payload: [UInt8], pageData: [UInt8] = []) {
        try! writer.appendRecord(kind: rawKind, payload: payload, pageData: pageData)
    }

    public mutating func append(_ parent: ParentRecord) {
        var w = ByteWriter()
        parent.encode(into: &w)
        append(kind: .parent, payload: w.bytes)
    }

    public mutating func append(_ area: MemoryAreaRecord, pageData: [UInt8]) {
        var w = ByteWriter()
        area.encode(into: &w)
        append(kind: .memoryArea, payload: w.bytes, pageData: pageData)
    }

    public mutating func finish() -> [UInt8] {
        try! writer.finish().bytes
    }
}
