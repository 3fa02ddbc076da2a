import CStasisABI
import StasisImage
import StasisImageSamples
import Testing

/// Format 4's compressed page data: PAGE_BLOCKS records after a MEMORY_AREA with the compressed flag
/// (Docs/IMAGE-FORMAT.md 4.11), built here by hand the way the agent writes them.
@Suite struct PageBlocksCodecTests {
    static let page = Int(STASIS_PAGE_SIZE)

    /// One block as its table entry says it, with the bytes it stores.
    struct Block {
        var pages: UInt32
        var storedBytes: UInt32
        var crc: UInt32
        var flags: UInt32
        var stored: [UInt8]

        /// `pageBytes` as the agent stores them: compressed with stasis_lz when that shrinks them, else raw.
        init(_ pageBytes: [UInt8]) {
            pages = UInt32(pageBytes.count / PageBlocksCodecTests.page)
            var output = [UInt8](repeating: 0, count: pageBytes.count)
            var scratch = [UInt8](repeating: 0, count: Int(STASIS_LZ_SCRATCH_BYTES))
            let compressed = pageBytes.withUnsafeBytes { input in
                output.withUnsafeMutableBytes { out in
                    scratch.withUnsafeMutableBytes { s in
                        stasis_lz_compress(input.baseAddress!, input.count, out.baseAddress!, out.count, s.baseAddress!)
                    }
                }
            }
            if compressed > 0 {
                stored = Array(output[0..<compressed])
                flags = 0
            } else {
                stored = pageBytes
                flags = STASIS_BLOCK_RAW
            }
            storedBytes = UInt32(stored.count)
            crc = CRC32C.of(stored)
        }

        /// A table entry that says whatever a test wants, storing `stored` (its CRC made right).
        init(pages: UInt32, storedBytes: UInt32, flags: UInt32, stored: [UInt8]) {
            self.pages = pages
            self.storedBytes = storedBytes
            self.flags = flags
            self.stored = stored
            crc = CRC32C.of(stored)
        }
    }

    /// One PAGE_BLOCKS record: payload (stasis_page_blocks_record_t + table) and data (stored bytes,
    /// zero padded to a page; `extraPages` more zero pages make data_bytes wrong).
    struct BlocksRecord {
        var payload: [UInt8]
        var data: [UInt8]

        init(firstPage: UInt64, _ blocks: [Block], count: UInt32? = nil, extraPages: Int = 0) {
            var w = ByteWriter()
            w.write(firstPage)
            w.write(count ?? UInt32(blocks.count))
            w.write(UInt32(0))
            for b in blocks {
                w.write(b.pages)
                w.write(b.storedBytes)
                w.write(b.crc)
                w.write(b.flags)
            }
            payload = w.bytes
            data = blocks.flatMap(\.stored)
            let page = PageBlocksCodecTests.page
            data += [UInt8](repeating: 0, count: (page - data.count % page) % page + extraPages * page)
        }
    }

    /// Page `i` of a test area: compressible text, or (every `randomEvery`-th page) xorshift output.
    static func pageBytes(_ i: Int, random: Bool = false, sequence: UInt64 = 3) -> [UInt8] {
        if random {
            var x = (UInt64(i + 1) &+ sequence << 32) &* 0x9e37_79b9_7f4a_7c15
            return (0..<page / 8).flatMap { _ -> [UInt8] in
                x ^= x << 13
                x ^= x >> 7
                x ^= x << 17
                return withUnsafeBytes(of: x.littleEndian, Array.init)
            }
        }
        let text = Array("{\"image\": \(sequence), \"page\": \(i), \"name\": \"record-\(i)\"}\n".utf8)
        return (0..<page).map { text[$0 % text.count] }
    }

    /// A format-`version` image with the sample's records and one compressed area at 0x10000000 with
    /// `runs`, followed by `records` (PAGE_BLOCKS unless `kinds` says otherwise), then END.
    /// With `parent`, an incremental image of sequence `sequence`.
    static func image(runs: [MemoryAreaRecord.PageRun], records: [BlocksRecord], version: UInt32 = 4,
                      flags: MemoryAreaRecord.Flags = [.anonymous, .compressed], areaData: [UInt8] = [],
                      between: [(RecordKind, [UInt8])] = [], sequence: UInt64 = 3, parent: ParentRecord? = nil) -> [UInt8] {
        var header = ImageHeader()
        header.version = version
        header.xcr0 = 0xe7
        header.xsaveSize = 2432
        header.pid = 4242
        header.sequence = sequence
        header.timeNanoseconds = sequence * 1000
        header.kernelRelease = "6.18.0"
        header.program = "/usr/bin/sample"
        var encoder = ImageEncoder(header: header)
        if let parent { encoder.append(parent) }
        var process = ProcessRecord()
        process.pid = 4242
        process.name = "sample"
        process.cwd = "/tmp"
        process.executable = "/usr/bin/sample"
        process.startBrk = 0x1000
        process.brk = 0x3000
        process.auxv = [1, 2, 3, 4, 5, 6, 7, 8]
        var w = ByteWriter()
        process.encode(into: &w)
        encoder.append(kind: .process, payload: w.bytes)
        appendSampleAgentAndThread(to: &encoder)
        // the AGENT record's addresses: code at 0x400000, its state at 0x600000 (as in sampleImage)
        appendSampleCodeArea(to: &encoder)
        var state = MemoryAreaRecord()
        state.start = 0x600000
        state.end = 0x601000
        state.protection = 3
        state.flags = [.anonymous]
        state.runs = [.init(firstPage: 0, pageCount: 1)]
        state.dataBytes = UInt64(page)
        encoder.append(state, pageData: [UInt8](repeating: 0xab, count: page))
        var area = MemoryAreaRecord()
        area.start = 0x1000_0000
        area.end = area.start + UInt64(runs.map { $0.firstPage + $0.pageCount }.max() ?? 1) * UInt64(page)
        area.protection = 3
        area.flags = flags
        area.runs = runs
        area.dataBytes = UInt64(areaData.count)
        encoder.append(area, pageData: areaData)
        for (kind, payload) in between { encoder.append(kind: kind, payload: payload) }
        for record in records { encoder.append(kind: .pageBlocks, payload: record.payload, pageData: record.data) }
        return encoder.finish()
    }

    /// The stored pages of `runs` (page i of the area is pageBytes(i), random when `random(i)`), cut as
    /// the agent cuts them: blocks of at most 64 pages inside one run, `perRecord` blocks a record.
    static func blocks(runs: [MemoryAreaRecord.PageRun], perRecord: Int = 16, sequence: UInt64 = 3,
                       random: (Int) -> Bool = { _ in false }) -> (records: [BlocksRecord], stored: [UInt8]) {
        var all: [Block] = []
        var stored: [UInt8] = []
        for run in runs where !run.isInherited {
            var first = Int(run.firstPage)
            let end = first + Int(run.pageCount)
            while first < end {
                let count = min(64, end - first)
                let bytes = (first..<first + count).flatMap { pageBytes($0, random: random($0), sequence: sequence) }
                all.append(Block(bytes))
                stored += bytes
                first += count
            }
        }
        var records: [BlocksRecord] = []
        var firstPage: UInt64 = 0
        for start in stride(from: 0, to: all.count, by: perRecord) {
            let part = Array(all[start..<min(start + perRecord, all.count)])
            records.append(BlocksRecord(firstPage: firstPage, part))
            firstPage += part.reduce(0) { $0 + UInt64($1.pages) }
        }
        return (records, stored)
    }

    /// Runs whose lengths are not multiples of 64, with holes between them: 70 + 5 + 130 = 205 pages.
    static let runs: [MemoryAreaRecord.PageRun] = [.init(firstPage: 0, pageCount: 70), .init(firstPage: 80, pageCount: 5),
                                                  .init(firstPage: 90, pageCount: 130)]

    /// Expects Image.decode to refuse `bytes` with a PAGE_BLOCKS (or `kind`) error whose reason has `word`.
    func expectRefused(_ bytes: [UInt8], kind: RecordKind = .pageBlocks, mentioning word: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try Image.decode(from: ByteArraySource(bytes))
            Issue.record("decoded an image that should be refused (\(word))", sourceLocation: sourceLocation)
        } catch {
            guard case .invalidRecord(let got, _, let reason) = error else {
                Issue.record("\(error), expected a \(kind) error", sourceLocation: sourceLocation)
                return
            }
            #expect(got == kind && reason.contains(word), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func layoutMatchesTheCStructs() {
        #expect(MemoryLayout<stasis_page_blocks_record_t>.size == 16)
        #expect(MemoryLayout<stasis_page_block_t>.size == 16)
        #expect(RecordKind.pageBlocks.rawValue == UInt32(STASIS_RECORD_PAGE_BLOCKS))
        #expect(MemoryAreaRecord.Flags.compressed.rawValue == UInt32(STASIS_AREA_COMPRESSED))
        #expect(PageBlock.maxPages == 64 && STASIS_BLOCKS_PER_RECORD == 16)
    }

    /// Blocks split at runs and at 64 pages, in two records, one block raw: decoded in order, every
    /// CRC and block checked by verifyPageData, and every page read back by StoredPageReader.
    @Test func decodesBlocksAcrossRecordsAndReadsEveryPageBack() throws {
        // the block of the area's pages 154-217 is random: stored raw
        let (records, stored) = Self.blocks(runs: Self.runs, perRecord: 4, random: { (154..<218).contains($0) })
        let bytes = Self.image(runs: Self.runs, records: records)
        let image = try Image.decode(from: ByteArraySource(bytes))
        #expect(image.header.version == 4)
        let area = image.memoryAreas[2]
        #expect(area.isCompressed && area.dataBytes == 0 && area.hasAllBlocks)
        #expect(area.blocks.map(\.pages) == [64, 6, 5, 64, 64, 2])
        #expect(area.blocks.map(\.firstStoredPage) == [0, 64, 70, 75, 139, 203])
        #expect(area.blocks.map(\.isRaw) == [false, false, false, false, true, false])
        #expect(area.rawBytes == 205 * UInt64(Self.page) && area.fileBytes < area.rawBytes)
        #expect(image.rawPageBytes == area.rawBytes + UInt64(Self.page) && image.storedBytes == area.fileBytes + UInt64(Self.page))
        try image.verifyPageData(from: ByteArraySource(bytes))

        var reader = StoredPageReader()
        let source = ByteArraySource(bytes)
        #expect(try reader.read(area, at: 0, count: area.rawBytes, from: source) == stored)
        // ranges across block boundaries, out of order (the reader's cached block must not leak)
        for (first, count) in [(60, 15), (0, 1), (200, 5), (69, 2), (74, 60), (128, 66), (204, 1)] {
            let got = try reader.read(area, at: UInt64(first * Self.page), count: UInt64(count * Self.page), from: source)
            #expect(got == Array(stored[first * Self.page..<(first + count) * Self.page]), "stored pages \(first)+\(count)")
        }
        #expect(throws: ImageError.self) { try reader.read(area, at: 204 * UInt64(Self.page), count: 2 * UInt64(Self.page), from: source) }
        #expect(throws: ImageError.self) { try reader.read(area, at: 100, count: UInt64(Self.page), from: source) }
    }

    @Test func refusesBadBlockTables() {
        let text = Block((0..<4).flatMap { Self.pageBytes($0) })
        let run: [MemoryAreaRecord.PageRun] = [.init(firstPage: 0, pageCount: 4)]
        let page = UInt32(Self.page)
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [], count: 0)]), mentioning: "0 blocks")
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [text], count: 17)]), mentioning: "17 blocks")
        let tooMany = [Block]((0..<17).map { Block(Self.pageBytes($0)) })
        expectRefused(Self.image(runs: [.init(firstPage: 0, pageCount: 17)], records: [BlocksRecord(firstPage: 0, tooMany)]),
                      mentioning: "17 blocks")
        let zeroPages = Block(pages: 0, storedBytes: text.storedBytes, flags: 0, stored: text.stored)
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [zeroPages])]), mentioning: "0 pages")
        let big = [UInt8](repeating: 7, count: 65 * Self.page)
        expectRefused(Self.image(runs: [.init(firstPage: 0, pageCount: 65)],
                                 records: [BlocksRecord(firstPage: 0, [Block(pages: 65, storedBytes: page, flags: STASIS_BLOCK_RAW,
                                                                             stored: Array(big[0..<Self.page]))])]),
                      mentioning: "65 pages")
        let rawShort = Block(pages: 4, storedBytes: 3 * page, flags: STASIS_BLOCK_RAW, stored: [UInt8](repeating: 1, count: 3 * Self.page))
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [rawShort])]), mentioning: "stored in")
        let notSmaller = Block(pages: 4, storedBytes: 4 * page, flags: 0, stored: [UInt8](repeating: 1, count: 4 * Self.page))
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [notSmaller])]), mentioning: "stored in")
        let empty = Block(pages: 4, storedBytes: 0, flags: 0, stored: [])
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [empty])]), mentioning: "stored in")
        var unknownFlag = text
        unknownFlag.flags = 4
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [unknownFlag])]), mentioning: "flags 4")
        var rawAndFiltered = text
        rawAndFiltered.flags = STASIS_BLOCK_RAW | STASIS_BLOCK_SHUFFLED
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [rawAndFiltered])]), mentioning: "flags 3")
        expectRefused(Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [text], extraPages: 1)]), mentioning: "bytes of data")
    }

    @Test func appendRefusesBlocksThatCrossRunsOrStartElsewhere() {
        // runs of 10 and 10 pages: a 20-page block from stored page 0 crosses from the first into the second
        let runs: [MemoryAreaRecord.PageRun] = [.init(firstPage: 0, pageCount: 10), .init(firstPage: 20, pageCount: 10)]
        let across = Block((0..<20).flatMap { Self.pageBytes($0) })
        expectRefused(Self.image(runs: runs, records: [BlocksRecord(firstPage: 0, [across])]), mentioning: "crosses")
        let first = Block((0..<10).flatMap { Self.pageBytes($0) })
        let second = Block((20..<30).flatMap { Self.pageBytes($0) })
        // a record that does not start where the last one ended (nor at 0)
        expectRefused(Self.image(runs: runs, records: [BlocksRecord(firstPage: 0, [first]), BlocksRecord(firstPage: 11, [second])]),
                      mentioning: "expected 10")
        expectRefused(Self.image(runs: runs, records: [BlocksRecord(firstPage: 10, [first, second])]), mentioning: "expected 0")
        // more pages than the runs store
        let third = Block((0..<10).flatMap { Self.pageBytes($0 + 40) })
        expectRefused(Self.image(runs: runs, records: [BlocksRecord(firstPage: 0, [first, second, third])]), mentioning: "beyond")
        // the right split decodes
        let good = Self.image(runs: runs, records: [BlocksRecord(firstPage: 0, [first]), BlocksRecord(firstPage: 10, [second])])
        #expect(throws: Never.self) { try Image.decode(from: ByteArraySource(good)) }
    }

    @Test func aCompressedAreaMustHaveAllItsBlocksRightAfterIt() {
        let (records, _) = Self.blocks(runs: Self.runs, perRecord: 2)
        #expect(records.count == 3)
        // the last record missing: END comes while the area still lacks pages
        expectRefused(Self.image(runs: Self.runs, records: Array(records.prefix(2))), kind: .memoryArea, mentioning: "lacks blocks")
        // no blocks at all
        expectRefused(Self.image(runs: Self.runs, records: []), kind: .memoryArea, mentioning: "lacks blocks")
        // another record between the area and its blocks
        var w = ByteWriter()
        var other = MemoryAreaRecord()
        other.start = 0x2000_0000
        other.end = 0x2000_1000
        other.protection = 3
        other.flags = [.anonymous]
        other.encode(into: &w)
        expectRefused(Self.image(runs: Self.runs, records: records, between: [(.memoryArea, w.bytes)]), kind: .memoryArea,
                      mentioning: "lacks blocks")
    }

    @Test func blocksNeedFormat4AndACompressedPrivateAreaWithoutDataOfItsOwn() {
        let (records, stored) = Self.blocks(runs: Self.runs)
        #expect(throws: Never.self) { try Image.decode(from: ByteArraySource(Self.image(runs: Self.runs, records: records))) }
        expectRefused(Self.image(runs: Self.runs, records: records, version: 3), mentioning: "not after a compressed")
        // blocks after a plain area (which holds its own pages)
        expectRefused(Self.image(runs: Self.runs, records: records, flags: [.anonymous], areaData: stored), mentioning: "not compressed")
        // a compressed area with data of its own, or shared
        expectRefused(Self.image(runs: Self.runs, records: records, areaData: stored), kind: .memoryArea, mentioning: "compressed area")
        expectRefused(Self.image(runs: Self.runs, records: records, flags: [.anonymous, .shared, .compressed]), kind: .memoryArea,
                      mentioning: "compressed area")
    }

    /// A damaged block is a checksum mismatch (its own CRC), a block that passes its CRC but does not
    /// decode is a malformed block: verifyPageData finds both, as a restart would.
    @Test func damagedAndMalformedBlocksAreFound() throws {
        let (records, _) = Self.blocks(runs: Self.runs)
        let bytes = Self.image(runs: Self.runs, records: records)
        let image = try Image.decode(from: ByteArraySource(bytes))
        let block = image.memoryAreas[2].blocks[1]
        #expect(!block.isRaw)
        var damaged = bytes
        damaged[Int(block.fileOffset) + Int(block.storedBytes) / 2] ^= 0x40
        let damagedImage = try Image.decode(from: ByteArraySource(damaged))  // page data is not read by decode
        #expect(throws: ImageError.self) { try damagedImage.verifyPageData(from: ByteArraySource(damaged)) }
        do {
            _ = try block.pageBytes(from: ByteArraySource(damaged), area: image.memoryAreas[2].start)
            Issue.record("a damaged block decoded")
        } catch {
            guard case .checksumMismatch = error else { Issue.record("\(error)"); return }
        }

        // 4 pages "compressed" into bytes that are no stasis_lz block (a match before the start), CRC right
        let garbage: [UInt8] = [0x0f, 0xff, 0xff, 0x00, 0x01, 0x02, 0x03, 0x04]
        let malformed = Block(pages: 4, storedBytes: UInt32(garbage.count), flags: 0, stored: garbage)
        let run: [MemoryAreaRecord.PageRun] = [.init(firstPage: 0, pageCount: 4)]
        let bad = Self.image(runs: run, records: [BlocksRecord(firstPage: 0, [malformed])])
        let badImage = try Image.decode(from: ByteArraySource(bad))
        do {
            try badImage.verifyPageData(from: ByteArraySource(bad))
            Issue.record("a malformed block verified")
        } catch {
            guard case .invalidRecord(.pageBlocks, _, let reason) = error, reason.contains("malformed") else {
                Issue.record("\(error)")
                return
            }
        }
    }

    /// `stasis compact` of a compressed image writes its pages plain: the area loses the flag, the
    /// PAGE_BLOCKS records go, and the pages are the same.
    @Test func compactionWritesCompressedPagesPlain() throws {
        let (records, stored) = Self.blocks(runs: Self.runs, perRecord: 3, random: { $0 % 7 == 0 })
        let bytes = Self.image(runs: Self.runs, records: records)
        let chain = ImageChain(try Image.decode(from: ByteArraySource(bytes)), source: ByteArraySource(bytes))
        var writer = ImageWriter(sink: ByteArraySink())
        try chain.writeStandalone(segments: try chain.resolveInheritedPages(), into: &writer)
        let compacted = writer.sink.bytes
        let image = try Image.decode(from: ByteArraySource(compacted))
        let area = image.memoryAreas[2]
        #expect(!area.isCompressed && area.blocks.isEmpty && area.runs == Self.runs)
        #expect(area.dataBytes == UInt64(stored.count))
        try image.verifyPageData(from: ByteArraySource(compacted))
        #expect(Array(compacted[Int(area.dataOffset)..<Int(area.dataOffset) + stored.count]) == stored)
    }

    /// A chain whose newest image inherits one compressed area's pages from two parents in turn (pages
    /// 0-15 and 48-127 from the full image, 16-47 from the middle one, each parent's first block at
    /// the same address): compaction must read each parent's own blocks, not a block it decoded from
    /// the other parent's area at that address.
    @Test func compactionOfAChainReadsEachParentsOwnCompressedBlocks() throws {
        func parent(_ sequence: UInt64, _ name: String, chainLength: UInt32) -> ParentRecord {
            var parent = ParentRecord()
            parent.sequence = sequence
            parent.timeNanoseconds = sequence * 1000
            parent.pid = 4242
            parent.chainLength = chainLength
            parent.name = name
            return parent
        }
        let whole: [MemoryAreaRecord.PageRun] = [.init(firstPage: 0, pageCount: 128)]
        let a = Self.image(runs: whole, records: Self.blocks(runs: whole, sequence: 1).records, sequence: 1)
        let middle: [MemoryAreaRecord.PageRun] = [.init(firstPage: 0, pageCount: 16, isInherited: true), .init(firstPage: 16, pageCount: 32),
                                                  .init(firstPage: 48, pageCount: 80, isInherited: true)]
        let b = Self.image(runs: middle, records: Self.blocks(runs: middle, sequence: 2).records, sequence: 2,
                           parent: parent(1, "a.img", chainLength: 2))
        let newest: [MemoryAreaRecord.PageRun] = [.init(firstPage: 0, pageCount: 128, isInherited: true)]
        let c = Self.image(runs: newest, records: [], flags: [.anonymous], sequence: 3, parent: parent(2, "b.img", chainLength: 3))

        let chain = try ChainFixture.load(c, files: ["a.img": a, "b.img": b])
        #expect(chain.members.count == 3)
        var writer = ImageWriter(sink: ByteArraySink())
        try chain.writeStandalone(segments: try chain.resolveInheritedPages(), into: &writer)
        let compacted = writer.sink.bytes
        let image = try Image.decode(from: ByteArraySource(compacted))
        let area = image.memoryAreas[2]
        #expect(area.runs == whole && !area.isCompressed)
        let data = Array(compacted[Int(area.dataOffset)..<Int(area.dataOffset) + 128 * Self.page])
        let expected = (0..<128).flatMap { Self.pageBytes($0, sequence: (16..<48).contains($0) ? 2 : 1) }
        let wrong = (0..<128).filter {
            !data[$0 * Self.page..<($0 + 1) * Self.page].elementsEqual(expected[$0 * Self.page..<($0 + 1) * Self.page])
        }
        #expect(wrong.isEmpty, "pages with another image's contents: \(wrong)")
    }
}
