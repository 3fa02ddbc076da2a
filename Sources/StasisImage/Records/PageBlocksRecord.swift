import CStasisABI

/// One block of a compressed area's page data (stasis_page_block_t), with where its stored bytes are.
public struct PageBlock: Equatable, Sendable {
    public static let maxPages = UInt32(STASIS_BLOCK_MAX_PAGES)
    /// The block's first page, counted in its area's stored pages (not-inherited runs, back to back).
    public var firstStoredPage: UInt64
    public var pages: UInt32
    public var storedBytes: UInt32
    public var crc: UInt32
    /// Stored as it is (it did not shrink); else one stasis_lz block.
    public var isRaw: Bool
    /// Compressed after the numeric filter (stasis_lz_shuffle), undone after decoding.
    public var isFiltered = false
    /// Absolute file offset of its stored bytes.
    public var fileOffset: UInt64

    public var rawBytes: UInt64 { UInt64(pages) * RecordHeader.pageSize }

    public init(firstStoredPage: UInt64, pages: UInt32, storedBytes: UInt32, crc: UInt32, isRaw: Bool, fileOffset: UInt64) {
        self.firstStoredPage = firstStoredPage
        self.pages = pages
        self.storedBytes = storedBytes
        self.crc = crc
        self.isRaw = isRaw
        self.fileOffset = fileOffset
    }

    /// The block's pages: its stored bytes read from `source`, checked against its CRC and decompressed.
    /// A damaged block is a checksum mismatch (or a malformed block), never other bytes.
    public func pageBytes(from source: ImageSource, area: UInt64) throws(ImageError) -> [UInt8] {
        let stored = try source.bytes(at: fileOffset, count: Int(storedBytes))
        guard CRC32C.of(stored) == crc else {
            throw .checksumMismatch("a compressed block of area \(hex(area)) (pages \(firstStoredPage)+\(pages) of its stored pages)")
        }
        if isRaw { return stored }
        var pages = [UInt8](repeating: 0, count: Int(rawBytes))
        let status = stored.withUnsafeBytes { input in
            pages.withUnsafeMutableBytes { output in
                stasis_lz_decompress(input.baseAddress!, input.count, output.baseAddress!, output.count)
            }
        }
        guard status == 0 else {
            throw .invalidRecord(.pageBlocks, at: fileOffset, reason: "a malformed compressed block of area \(hex(area))")
        }
        guard isFiltered else { return pages }
        var unfiltered = [UInt8](repeating: 0, count: pages.count)
        pages.withUnsafeBytes { input in
            unfiltered.withUnsafeMutableBytes { output in stasis_lz_unshuffle(input.baseAddress!, output.baseAddress!, output.count) }
        }
        return unfiltered
    }
}

/// A PAGE_BLOCKS record (stasis_page_blocks_record_t + its block table): some of the blocks of the
/// compressed MEMORY_AREA before it.
public struct PageBlocksRecord: Equatable, Sendable {
    public var firstStoredPage: UInt64 = 0
    public var blocks: [PageBlock] = []

    public init() {}

    /// `header`: this record's (the blocks' stored bytes are its data, back to back).
    public init(decoding reader: inout ByteReader, header: RecordHeader) throws(ImageError) {
        let at = reader.base
        firstStoredPage = try reader.read(UInt64.self)
        let count = try reader.read(UInt32.self)
        _ = try reader.read(UInt32.self)
        guard count >= 1, count <= UInt32(STASIS_BLOCKS_PER_RECORD) else {
            throw .invalidRecord(.pageBlocks, at: at, reason: "\(count) blocks")
        }
        var page = firstStoredPage
        var offset = header.dataOffset
        var stored: UInt64 = 0
        for _ in 0..<count {
            let pages = try reader.read(UInt32.self)
            let storedBytes = try reader.read(UInt32.self)
            let crc = try reader.read(UInt32.self)
            let flags = try reader.read(UInt32.self)
            let raw = UInt64(pages) * RecordHeader.pageSize
            guard pages >= 1, pages <= PageBlock.maxPages, flags & ~(STASIS_BLOCK_RAW | STASIS_BLOCK_SHUFFLED) == 0,
                flags != STASIS_BLOCK_RAW | STASIS_BLOCK_SHUFFLED,
                flags & STASIS_BLOCK_RAW != 0 ? UInt64(storedBytes) == raw : (storedBytes > 0 && UInt64(storedBytes) < raw)
            else { throw .invalidRecord(.pageBlocks, at: at, reason: "block of \(pages) pages stored in \(storedBytes) bytes (flags \(flags))") }
            var block = PageBlock(firstStoredPage: page, pages: pages, storedBytes: storedBytes, crc: crc,
                                  isRaw: flags & STASIS_BLOCK_RAW != 0, fileOffset: offset)
            block.isFiltered = flags & STASIS_BLOCK_SHUFFLED != 0
            blocks.append(block)
            page += UInt64(pages)
            offset += UInt64(storedBytes)
            stored += UInt64(storedBytes)
        }
        guard header.dataBytes == align(stored, to: RecordHeader.pageSize), stored > 0 else {
            throw .invalidRecord(.pageBlocks, at: at, reason: "\(header.dataBytes) bytes of data for \(stored) stored bytes")
        }
        // Each block has its own CRC (a lazy restart checks one block alone): the record's data has none.
        guard header.dataCRC == 0 else { throw .invalidRecord(.pageBlocks, at: at, reason: "a data checksum besides the blocks' own") }
    }
}

/// Reads a range of an area's stored pages (a plain area's from its data, a compressed one's by
/// decoding the blocks that hold it), keeping the last decoded block: ranges read in order decode
/// each block once.
public struct StoredPageReader {
    private var cachedBlock: (area: UInt64, index: Int)? = nil
    private var cachedPages: [UInt8] = []

    public init() {}

    /// `count` bytes from `offset` bytes into `area`'s stored pages (both page multiples for a
    /// compressed area; any for a plain one).
    public mutating func read(_ area: MemoryAreaRecord, at offset: UInt64, count: UInt64, from source: ImageSource)
        throws(ImageError) -> [UInt8]
    {
        guard area.isCompressed else { return try source.bytes(at: area.dataOffset + offset, count: Int(count)) }
        let page = RecordHeader.pageSize
        // The blocks' end, not area.rawBytes: that sums the area's runs, tens of thousands in a
        // fragmented incremental area, and this runs once per segment (quadratic: 30 s to compact a
        // 128 MiB chain of the dirty fixture). A decoded area's blocks hold exactly its stored pages.
        let blocksEnd = area.blocks.last.map { ($0.firstStoredPage + UInt64($0.pages)) * page } ?? 0
        guard offset % page == 0, count % page == 0, offset + count <= blocksEnd else {
            throw .invalidRecord(.memoryArea, at: 0, reason: "stored pages \(offset / page)+\(count / page) outside area \(hex(area.start))")
        }
        var result: [UInt8] = []
        result.reserveCapacity(Int(count))
        var storedPage = offset / page
        let endPage = (offset + count) / page
        // The block holding the first page: the last one starting at or before it.
        var low = 0, high = area.blocks.count
        while low < high {
            let middle = (low + high) / 2
            if area.blocks[middle].firstStoredPage <= storedPage { low = middle + 1 } else { high = middle }
        }
        var index = low - 1
        while storedPage < endPage {
            guard index >= 0, index < area.blocks.count else { throw .truncated(at: source.size) }
            let block = area.blocks[index]
            if cachedBlock?.area != area.start || cachedBlock?.index != index {
                cachedPages = try block.pageBytes(from: source, area: area.start)
                cachedBlock = (area.start, index)
            }
            let from = storedPage - block.firstStoredPage
            let to = min(UInt64(block.pages), endPage - block.firstStoredPage)
            result += cachedPages[Int(from * page)..<Int(to * page)]
            storedPage = block.firstStoredPage + to
            index += 1
        }
        return result
    }
}
