// FREEZE WINDOW: see Freeze/RawSyscall.swift.
//
// --compress: an area's stored pages as PAGE_BLOCKS records (Docs/IMAGE-FORMAT.md 4.13) right after
// its MEMORY_AREA record. The stored runs are cut into blocks of at most 64 pages that never cross a
// run; up to 16 blocks are compressed into arena memory, then written as one record (its header
// needs their sizes). A block that does not shrink is written raw, straight from its addresses.
import CStasisABI

/// Compresses and writes the page data of compressed areas. Its buffers come from the arena once.
struct PageBlockWriter {
    static let blockPages = UInt64(STASIS_BLOCK_MAX_PAGES)
    static let blocksPerRecord = Int(STASIS_BLOCKS_PER_RECORD)
    /// Areas with fewer stored pages are written plain: a PAGE_BLOCKS record's header and padding
    /// would cost about what compression saves.
    static let minimumPages: UInt64 = 16

    /// Compressed bytes of the pending blocks (each < its pages' bytes, so one record's always fit).
    let output: UnsafeMutableRawPointer
    let hashTable: UnsafeMutableRawPointer
    /// The pending record's block table, and where each block's stored bytes are.
    let blocks: UnsafeMutablePointer<stasis_page_block_t>
    let sources: UnsafeMutablePointer<UInt>
    private var pending = 0
    private var outputUsed = 0
    /// Stored-page indexes (the area's stored pages counted from 0) of the pending blocks.
    private var firstPage: UInt64 = 0
    private var nextPage: UInt64 = 0
    /// Raw and stored bytes of every area written so far (for the report).
    private(set) var rawBytes: UInt64 = 0
    private(set) var storedBytes: UInt64 = 0

    @_noAllocation @_noLocks
    static func make(arena: inout FreezeArena) -> PageBlockWriter? {
        let page = Int(STASIS_PAGE_SIZE)
        guard let output = arena.take(blocksPerRecord * Int(blockPages) * page, alignment: page),
            let hashTable = arena.take(Int(STASIS_LZ_SCRATCH_BYTES), alignment: 64),
            let blocks = arena.take(blocksPerRecord * MemoryLayout<stasis_page_block_t>.stride),
            let sources = arena.take(blocksPerRecord * MemoryLayout<UInt>.stride, alignment: 8)
        else { return nil }
        return PageBlockWriter(output: output, hashTable: hashTable,
                               blocks: blocks.bindMemory(to: stasis_page_block_t.self, capacity: blocksPerRecord),
                               sources: sources.bindMemory(to: UInt.self, capacity: blocksPerRecord))
    }

    @_noAllocation @_noLocks
    private init(output: UnsafeMutableRawPointer, hashTable: UnsafeMutableRawPointer,
                 blocks: UnsafeMutablePointer<stasis_page_block_t>, sources: UnsafeMutablePointer<UInt>) {
        self.output = output
        self.hashTable = hashTable
        self.blocks = blocks
        self.sources = sources
    }

    /// Writes the PAGE_BLOCKS records of one area whose pages are readable at `base` (the area's
    /// start, or the writer's copy of it).
    @_noAllocation @_noLocks
    mutating func write(base: UInt64, runs: UnsafePointer<stasis_page_run_t>, runCount: Int, into image: inout ImageFile)
        throws(FreezeFailure)
    {
        pending = 0
        outputUsed = 0
        firstPage = 0
        nextPage = 0
        for i in 0..<runCount where runs[i].first_page & STASIS_RUN_INHERITED == 0 {
            var page = runs[i].first_page
            var left = runs[i].page_count
            while left > 0 {
                let pages = min(left, Self.blockPages)
                try add(address: base + page * UInt64(STASIS_PAGE_SIZE), pages: pages, into: &image)
                page += pages
                left -= pages
            }
        }
        try flush(into: &image)
    }

    @_noAllocation @_noLocks
    private mutating func add(address: UInt64, pages: UInt64, into image: inout ImageFile) throws(FreezeFailure) {
        if pending == Self.blocksPerRecord { try flush(into: &image) }
        guard let source = UnsafeRawPointer(bitPattern: UInt(address)) else {
            throw FreezeFailure(step: .writeImage, errno: RawErrno.invalid)
        }
        let raw = Int(pages) * Int(STASIS_PAGE_SIZE)
        let into = output + outputUsed
        let compressed = _unsafePerformance { stasis_lz_compress(source, raw, into, raw, hashTable) }
        var block = stasis_page_block_t(pages: UInt32(pages), stored_bytes: 0, crc: 0, flags: 0)
        if compressed > 0 {
            block.stored_bytes = UInt32(compressed)
            block.crc = _unsafePerformance { stasis_crc32c_end(stasis_crc32c_update(stasis_crc32c_begin(), into, UInt(compressed))) }
            sources[pending] = UInt(bitPattern: into)
            outputUsed += compressed
        } else {
            block.stored_bytes = UInt32(raw)
            block.flags = STASIS_BLOCK_RAW
            block.crc = _unsafePerformance { stasis_crc32c_end(stasis_crc32c_update(stasis_crc32c_begin(), source, UInt(raw))) }
            sources[pending] = UInt(address)
        }
        blocks[pending] = block
        pending += 1
        nextPage += pages
        rawBytes += UInt64(raw)
        storedBytes += UInt64(block.stored_bytes)
    }

    /// One record: the pending blocks' table, then their stored bytes, zero padded to a page.
    @_noAllocation @_noLocks
    private mutating func flush(into image: inout ImageFile) throws(FreezeFailure) {
        guard pending > 0 else { return }
        let page = UInt64(STASIS_PAGE_SIZE)
        var stored: UInt64 = 0
        for i in 0..<pending { stored += UInt64(blocks[i].stored_bytes) }
        let dataBytes = (stored + page - 1) / page * page
        var header = stasis_page_blocks_record_t(first_page: firstPage, block_count: UInt32(pending), reserved: 0)
        let headerBytes = MemoryLayout<stasis_page_blocks_record_t>.size
        let tableBytes = pending * MemoryLayout<stasis_page_block_t>.size
        try image.beginRecord(kind: UInt32(STASIS_RECORD_PAGE_BLOCKS), payloadBytes: headerBytes + tableBytes, dataBytes: dataBytes)
        try image.write(&header, headerBytes)
        try image.write(UnsafeRawPointer(blocks), tableBytes)
        try image.endPayload()
        for i in 0..<pending {
            guard let bytes = UnsafeRawPointer(bitPattern: sources[i]) else { continue }
            try image.write(bytes, Int(blocks[i].stored_bytes))
        }
        if dataBytes > stored { try image.write(image.zeros, Int(dataBytes - stored)) }
        try image.endRecord()
        firstPage = nextPage
        pending = 0
        outputUsed = 0
    }
}
