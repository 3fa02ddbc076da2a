// FREEZE WINDOW: see Freeze/RawSyscall.swift.
//
// --compress: an area's stored pages as PAGE_BLOCKS records (Docs/IMAGE-FORMAT.md 4.11) right after
// its MEMORY_AREA record. The stored runs are cut into blocks of at most 64 pages that never cross a
// run; a batch of up to 16 blocks is compressed into arena memory, then written as one record (its
// header needs their sizes). A block that does not shrink is written raw, straight from its pages.
//
// The copy-on-write writer compresses with threads of its own besides itself (stasis_compress_pool.h)
// and writes each batch while the next one is being compressed:
//
//   writer:  fill B1 | start B1, help, wait | fill B2 | start B2, write B1, help, wait | ... | write Bn
//   workers:           compress B1                     compress B2
import CStasisABI
import CStasisShim

/// Compresses and writes the page data of compressed areas. Its buffers come from the arena once.
struct PageBlockWriter {
    static let blockPages = UInt64(STASIS_BLOCK_MAX_PAGES)
    static let blockBytes = Int(STASIS_BLOCK_MAX_PAGES) * Int(STASIS_PAGE_SIZE)
    static let batchCapacity = Int(STASIS_BLOCKS_PER_RECORD)
    /// Areas with fewer stored pages are written plain: a PAGE_BLOCKS record's header and padding
    /// would cost about what compression saves.
    static let minimumPages: UInt64 = 16

    /// One record's blocks: their pages, where their stored bytes go (a block-sized slot each) and,
    /// once compressed, the table the record holds and where each block's stored bytes are.
    struct Batch {
        let output: UnsafeMutableRawPointer
        let blocks: UnsafeMutablePointer<stasis_page_block_t>
        let sources: UnsafeMutablePointer<UInt>
        var count = 0
        /// The first block's first page, counted in its area's stored pages.
        var firstPage: UInt64 = 0
    }

    let pool: UnsafeMutablePointer<stasis_compress_pool_t>
    private var batches: (Batch, Batch)
    /// A compressed batch not yet written (batches.1), written while the next one is compressed.
    private var unwritten = false
    /// The area's stored page where the next block starts.
    private var nextPage: UInt64 = 0
    /// Worker threads' stacks (STASIS_POOL_MAX_WORKERS of them).
    let stacks: UnsafeMutableRawPointer

    @_noAllocation @_noLocks
    static func make(arena: inout FreezeArena) -> PageBlockWriter? {
        let page = Int(STASIS_PAGE_SIZE)
        func batch(_ arena: inout FreezeArena) -> Batch? {
            guard let output = arena.take(batchCapacity * blockBytes, alignment: page),
                let blocks = arena.take(batchCapacity * MemoryLayout<stasis_page_block_t>.stride),
                let sources = arena.take(batchCapacity * MemoryLayout<UInt>.stride, alignment: 8)
            else { return nil }
            return Batch(output: output, blocks: blocks.bindMemory(to: stasis_page_block_t.self, capacity: batchCapacity),
                         sources: sources.bindMemory(to: UInt.self, capacity: batchCapacity))
        }
        guard let first = batch(&arena), let second = batch(&arena),
            let pool = arena.take(MemoryLayout<stasis_compress_pool_t>.size, alignment: 64),
            let stacks = arena.take(Int(STASIS_POOL_MAX_WORKERS) * Int(STASIS_POOL_STACK_BYTES), alignment: page),
            let filtered = arena.take((Int(STASIS_POOL_MAX_WORKERS) + 1) * blockBytes, alignment: page)
        else { return nil }
        let typed = pool.bindMemory(to: stasis_compress_pool_t.self, capacity: 1)
        typed.pointee.workers = 0
        withUnsafeMutablePointer(to: &typed.pointee.filtered) { tuple in
            tuple.withMemoryRebound(to: Optional<UnsafeMutablePointer<UInt8>>.self, capacity: Int(STASIS_POOL_MAX_WORKERS) + 1) { slots in
                for i in 0...Int(STASIS_POOL_MAX_WORKERS) {
                    slots[i] = (filtered + i * blockBytes).assumingMemoryBound(to: UInt8.self)
                }
            }
        }
        return PageBlockWriter(pool: typed, batches: (first, second), stacks: stacks)
    }

    @_noAllocation @_noLocks
    private init(pool: UnsafeMutablePointer<stasis_compress_pool_t>, batches: (Batch, Batch), stacks: UnsafeMutableRawPointer) {
        self.pool = pool
        self.batches = batches
        self.stacks = stacks
    }

    /// The copy-on-write writer: one worker thread per other CPU this process may run on (at most 7).
    /// Never in the program itself: its threads are the program's own.
    @_noAllocation @_noLocks
    mutating func startWorkers() {
        var mask: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let bytes = withUnsafeMutablePointer(to: &mask) { RawSyscall.call(STASIS_NR_sched_getaffinity, 0, 64, Int(bitPattern: $0)) }
        guard bytes > 0 else { return }
        let cpus = mask.0.nonzeroBitCount + mask.1.nonzeroBitCount + mask.2.nonzeroBitCount + mask.3.nonzeroBitCount
            + mask.4.nonzeroBitCount + mask.5.nonzeroBitCount + mask.6.nonzeroBitCount + mask.7.nonzeroBitCount
        guard cpus > 1 else { return }
        _ = stasis_pool_open(pool, Int32(min(cpus - 1, Int(STASIS_POOL_MAX_WORKERS))), stacks)
    }

    @_noAllocation @_noLocks
    mutating func stopWorkers() {
        if pool.pointee.workers > 0 { stasis_pool_close(pool) }
    }

    /// Writes the PAGE_BLOCKS records of one area whose pages are readable at `base` (the area's
    /// start, or the writer's copy of it).
    @_noAllocation @_noLocks
    mutating func write(base: UInt64, runs: UnsafePointer<stasis_page_run_t>, runCount: Int, into image: inout ImageFile)
        throws(FreezeFailure)
    {
        nextPage = 0
        batches.0.count = 0
        batches.0.firstPage = 0
        for i in 0..<runCount where runs[i].first_page & STASIS_RUN_INHERITED == 0 {
            var page = runs[i].first_page
            var left = runs[i].page_count
            while left > 0 {
                let pages = min(left, Self.blockPages)
                if batches.0.count == Self.batchCapacity { try compressBatch(into: &image) }
                batches.0.sources[batches.0.count] = UInt(base + page * UInt64(STASIS_PAGE_SIZE))
                batches.0.blocks[batches.0.count] = stasis_page_block_t(pages: UInt32(pages), stored_bytes: 0, crc: 0, flags: 0)
                batches.0.count += 1
                page += pages
                left -= pages
            }
        }
        if batches.0.count > 0 { try compressBatch(into: &image) }
        try writeUnwritten(into: &image)
    }

    /// Compresses batches.0 (writing the batch before it meanwhile), which then waits as batches.1.
    @_noAllocation @_noLocks
    private mutating func compressBatch(into image: inout ImageFile) throws(FreezeFailure) {
        let batch = batches.0
        withUnsafeMutablePointer(to: &pool.pointee.jobs) { tuple in
            tuple.withMemoryRebound(to: stasis_compress_job_t.self, capacity: Self.batchCapacity) { jobs in
                for i in 0..<batch.count {
                    jobs[i] = stasis_compress_job_t(source: UnsafeRawPointer(bitPattern: batch.sources[i]),
                                                    output: batch.output + i * Self.blockBytes,
                                                    raw: batch.blocks[i].pages * UInt32(STASIS_PAGE_SIZE), stored: 0, crc: 0, flags: 0)
                }
            }
        }
        stasis_pool_start(pool, Int32(batch.count))
        try writeUnwritten(into: &image)
        stasis_pool_help(pool)
        stasis_pool_wait(pool)
        withUnsafeMutablePointer(to: &pool.pointee.jobs) { tuple in
            tuple.withMemoryRebound(to: stasis_compress_job_t.self, capacity: Self.batchCapacity) { jobs in
                for i in 0..<batch.count {
                    let raw = jobs[i].raw
                    if jobs[i].stored > 0 {
                        batch.blocks[i].stored_bytes = jobs[i].stored
                        batch.blocks[i].flags = jobs[i].flags
                        batch.sources[i] = UInt(bitPattern: batch.output + i * Self.blockBytes)
                    } else {
                        batch.blocks[i].stored_bytes = raw
                        batch.blocks[i].flags = STASIS_BLOCK_RAW
                    }
                    batch.blocks[i].crc = jobs[i].crc
                    nextPage += UInt64(batch.blocks[i].pages)
                }
            }
        }
        swap(&batches.0, &batches.1)
        unwritten = true
        batches.0.count = 0
        batches.0.firstPage = nextPage
    }

    /// One record: the compressed batch's table, then its stored bytes, zero padded to a page. The
    /// blocks' own CRCs cover the data: the record's data_crc is 0.
    @_noAllocation @_noLocks
    private mutating func writeUnwritten(into image: inout ImageFile) throws(FreezeFailure) {
        guard unwritten else { return }
        unwritten = false
        let batch = batches.1
        let page = UInt64(STASIS_PAGE_SIZE)
        var stored: UInt64 = 0
        for i in 0..<batch.count { stored += UInt64(batch.blocks[i].stored_bytes) }
        let dataBytes = (stored + page - 1) / page * page
        var header = stasis_page_blocks_record_t(first_page: batch.firstPage, block_count: UInt32(batch.count), reserved: 0)
        let headerBytes = MemoryLayout<stasis_page_blocks_record_t>.size
        let tableBytes = batch.count * MemoryLayout<stasis_page_block_t>.size
        try image.beginRecord(kind: UInt32(STASIS_RECORD_PAGE_BLOCKS), payloadBytes: headerBytes + tableBytes, dataBytes: dataBytes,
                              dataChecksummed: false)
        try image.write(&header, headerBytes)
        try image.write(UnsafeRawPointer(batch.blocks), tableBytes)
        try image.endPayload()
        for i in 0..<batch.count {
            guard let bytes = UnsafeRawPointer(bitPattern: batch.sources[i]) else { continue }
            try image.write(bytes, Int(batch.blocks[i].stored_bytes))
        }
        if dataBytes > stored { try image.write(image.zeros, Int(dataBytes - stored)) }
        try image.endRecord()
    }
}
