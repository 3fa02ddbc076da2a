import CStasisABI
import StasisImage
import Testing

@Suite struct ImageWriterTests {
    let key = Array("a key for the tests".utf8)

    @Test func constantsAreTheCHeaders() {
        #expect(ImageHeader.magic == Array("STASIS".utf8) + [0, 1])
        #expect(ImageHeader.size == 144 && ImageHeader.crcOffset == 140)
        #expect(RecordHeader.size == 32 && RecordHeader.checkedBytes == 24)
        #expect(EndRecord.size == 64 && EndRecord.macOffset == 32 && EndRecord.macBytes == 32)
        #expect(withUnsafeBytes(of: EndRecord.magic.littleEndian) { Array($0) } == Array("STASIEND".utf8))
    }

    @Test func aSignedImageVerifiesWithItsKeyOnly() throws {
        let bytes = ChainFixture.image(sequence: 1, parent: nil, runs: [.init(firstPage: 0, pageCount: 4)], key: key)
        let image = try Image.decode(from: ByteArraySource(bytes))
        #expect(image.signature != nil)
        try image.verifySignature(from: ByteArraySource(bytes), key: key)
        #expect(throws: ImageError.self) { try image.verifySignature(from: ByteArraySource(bytes), key: Array("another".utf8)) }
        let unsigned = try Image.decode(from: ByteArraySource(ChainFixture.a))
        #expect(unsigned.signature == nil)
    }

    @Test func everyRecordIsFramedAsTheDecoderExpects() throws {
        var writer = ImageWriter(sink: ByteArraySink())
        var header = ImageHeader()
        header.pid = 1
        header.xcr0 = 3
        header.xsaveSize = 512
        header.program = "/p"
        try writer.writeHeader(header)
        #expect(writer.offset == UInt64(ImageHeader.size + 8))
        try writer.beginRecord(kind: 99, payload: [1, 2, 3], dataBytes: 8192)
        #expect(writer.offset == 4096)  // payload padded to the next page
        try writer.writeData([UInt8](repeating: 7, count: 4096))
        try writer.writeData([UInt8](repeating: 8, count: 4096))
        try writer.endRecord()
        let bytes = try writer.finish().bytes
        var reader = ByteReader(Array(bytes[152..<184]))
        let record = try RecordHeader(decoding: &reader)
        #expect(record.dataOffset == 4096 && record.dataBytes == 8192)
        #expect(record.payloadCRC == record.computePayloadCRC([1, 2, 3]))
        #expect(record.dataCRC == CRC32C.of(Array(bytes[4096..<12288])))
        // Not a whole image (no PROCESS...), but framing, CRCs and END pass before validation.
        #expect(throws: ImageError.missingRecord("PROCESS")) { try Image.decode(from: ByteArraySource(bytes)) }
    }
}

@Suite struct CompactionTests {
    func compact(_ bytes: [UInt8], key: [UInt8]? = nil) throws -> [UInt8] {
        let chain = try ChainFixture.load(bytes, files: ChainFixture.files)
        var writer = ImageWriter(sink: ByteArraySink(), key: key)
        try chain.writeStandalone(segments: try chain.resolveInheritedPages(), into: &writer)
        return writer.sink.bytes
    }

    @Test func anIncrementalImageBecomesAFullOneWithItsParentsPages() throws {
        let c = ChainFixture.c()
        let compacted = try compact(c)
        let image = try Image.decode(from: ByteArraySource(compacted))
        let original = try Image.decode(from: ByteArraySource(c))
        #expect(image.parent == nil)
        #expect(image.header == original.header)
        #expect(Array(compacted[0..<Int(image.header.recordsOffset)]) == Array(c[0..<Int(original.header.recordsOffset)]))
        #expect(image.recordOffsets.count == original.recordOffsets.count - 1)  // PARENT dropped
        let area = image.memoryAreas[1]
        #expect(area.runs == [.init(firstPage: 0, pageCount: 4)])
        try image.verifyPageData(from: ByteArraySource(compacted))
        let page = ChainFixture.page
        let data = Array(compacted[Int(area.dataOffset)..<Int(area.dataOffset) + 4 * page])
        // page 0 from b, page 1 its own, pages 2-3 from a
        #expect(stride(from: 0, to: 4 * page, by: page).map { data[$0] } == [0x20, 0x31, 0x12, 0x13])
        #expect(stride(from: 0, to: 4 * page, by: page).allSatisfy { Set(data[$0..<$0 + page]).count == 1 })
    }

    @Test func theResultIsSignedWhenThereIsAKey() throws {
        let key = Array("chain key".utf8)
        let compacted = try compact(ChainFixture.c(key: key), key: key)
        let image = try Image.decode(from: ByteArraySource(compacted))
        try image.verifySignature(from: ByteArraySource(compacted), key: key)
        #expect(try Image.decode(from: ByteArraySource(try compact(ChainFixture.c()))).signature == nil)
    }

    @Test func recordsOfUnknownKindsAreKept() throws {
        let c = ChainFixture.image(sequence: 3, parent: ChainFixture.parent(2, "b.img", chainLength: 3),
                                   runs: [.init(firstPage: 0, pageCount: 4, isInherited: true)], unknownRecord: true)
        let image = try Image.decode(from: ByteArraySource(try compact(c)))
        #expect(image.unknownRecordCount == 1)
        #expect(image.memoryAreas[1].runs == [.init(firstPage: 0, pageCount: 4)])
    }

    @Test func aFullImageCompactsToTheSameBytes() throws {
        #expect(try compact(ChainFixture.a) == ChainFixture.a)
    }
}
