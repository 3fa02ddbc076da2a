import CStasisABI

/// One mapping (stasis_memory_area_record_t), its stored page runs and its path.
public struct MemoryAreaRecord: Equatable, Sendable {
    public static let fixedSize = MemoryLayout<stasis_memory_area_record_t>.size
    public static let userSpaceTop: UInt64 = 0x7fff_ffff_f000

    public struct Flags: OptionSet, Sendable, Equatable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let shared = Flags(rawValue: 1 << 0)
        public static let anonymous = Flags(rawValue: 1 << 1)
        public static let heap = Flags(rawValue: 1 << 2)
        public static let stack = Flags(rawValue: 1 << 3)
        public static let vdso = Flags(rawValue: 1 << 4)
        public static let vvar = Flags(rawValue: 1 << 5)
        public static let vvarVclock = Flags(rawValue: 1 << 6)
        public static let vsyscall = Flags(rawValue: 1 << 7)
        public static let scratch = Flags(rawValue: 1 << 8)
        /// MAP_SHARED of a memfd or deleted file (with .shared and .anonymous): device/inode name the file
        /// as its descriptor record does; restart maps that recreated file again.
        public static let fileObject = Flags(rawValue: 1 << 9)
        /// Format 4: the page data is in the PAGE_BLOCKS records after this one (`blocks`), not here.
        public static let compressed = Flags(rawValue: 1 << 10)
        public static let known: Flags = [.shared, .anonymous, .heap, .stack, .vdso, .vvar, .vvarVclock, .vsyscall, .scratch,
                                          .fileObject, .compressed]
        public static let notStored: Flags = [.vdso, .vvar, .vvarVclock, .vsyscall, .scratch]
    }

    public struct PageRun: Equatable, Sendable {
        /// Bit 63 of first_page on disk (STASIS_RUN_INHERITED).
        public static let inheritedBit: UInt64 = 1 << 63
        public var firstPage: UInt64
        public var pageCount: UInt64
        /// Incremental images: the pages are as the parent image has them; no data here.
        public var isInherited: Bool
        public init(firstPage: UInt64, pageCount: UInt64, isInherited: Bool = false) {
            self.firstPage = firstPage
            self.pageCount = pageCount
            self.isInherited = isInherited
        }
    }

    public var start: UInt64 = 0, end: UInt64 = 0
    public var fileOffset: UInt64 = 0
    public var protection: UInt32 = 0
    public var flags: Flags = []
    public var device: UInt64 = 0, inode: UInt64 = 0
    public var fileSize: UInt64 = 0
    public var fileModificationNanoseconds: Int64 = 0
    public var runs: [PageRun] = []
    public var path: String = ""
    /// Where the runs' pages are in the file (from the record header).
    public var dataOffset: UInt64 = 0
    public var dataBytes: UInt64 = 0
    public var dataCRC: UInt32 = 0
    /// A compressed area's blocks, in order, from the PAGE_BLOCKS records after it.
    public var blocks: [PageBlock] = []

    public init() {}

    public var isCompressed: Bool { flags.contains(.compressed) }
    /// Bytes of its stored pages as the program had them.
    public var rawBytes: UInt64 { storedPages * RecordHeader.pageSize }
    /// Bytes its stored pages take in the file (compressed or not).
    public var fileBytes: UInt64 { isCompressed ? blocks.reduce(0) { $0 + UInt64($1.storedBytes) } : dataBytes }
    /// Whether the blocks hold every stored page (always, for a plain area).
    public var hasAllBlocks: Bool { !isCompressed || blockedPages == storedPages }
    /// append's cursor, so that decoding stays linear in blocks and runs: the stored pages the blocks
    /// hold so far, the next run to enter, and the stored page where the run being filled ends.
    private var blockedPages: UInt64 = 0
    private var nextRun = 0
    private var runEnd: UInt64 = 0

    /// Appends a PAGE_BLOCKS record's blocks: they continue where the last one ended and no block
    /// crosses from one stored run into the next.
    public mutating func append(_ record: PageBlocksRecord, header: RecordHeader, at offset: UInt64) throws(ImageError) {
        func fail(_ why: String) -> ImageError { .invalidRecord(.pageBlocks, at: offset, reason: why) }
        guard isCompressed else { throw fail("blocks for area \(hex(start)), which is not compressed") }
        guard record.firstStoredPage == blockedPages else {
            throw fail("blocks from stored page \(record.firstStoredPage), expected \(blockedPages)")
        }
        for block in record.blocks {
            let end = block.firstStoredPage + UInt64(block.pages)
            // The run holding the block's first page must hold its last.
            while block.firstStoredPage >= runEnd {
                while nextRun < runs.count, runs[nextRun].isInherited { nextRun += 1 }
                guard nextRun < runs.count else { throw fail("blocks beyond the area's \(storedPages) stored pages") }
                runEnd += runs[nextRun].pageCount
                nextRun += 1
            }
            guard end <= runEnd else {
                throw end > storedPages ? fail("blocks beyond the area's \(storedPages) stored pages")
                    : fail("a block crosses from one page run into the next")
            }
            blockedPages = end
        }
        blocks += record.blocks
    }

    /// Pages whose data this image holds (inherited runs hold none).
    public var storedPages: UInt64 { runs.reduce(0) { $0 + ($1.isInherited ? 0 : $1.pageCount) } }
    public var inheritedPages: UInt64 { runs.reduce(0) { $0 + ($1.isInherited ? $1.pageCount : 0) } }
    public var isFileBacked: Bool { !flags.contains(.anonymous) && !flags.contains(.scratch) && path.hasPrefix("/") }

    public init(decoding reader: inout ByteReader, header: RecordHeader) throws(ImageError) {
        start = try reader.read(UInt64.self); end = try reader.read(UInt64.self)
        fileOffset = try reader.read(UInt64.self)
        protection = try reader.read(UInt32.self)
        flags = Flags(rawValue: try reader.read(UInt32.self))
        device = try reader.read(UInt64.self); inode = try reader.read(UInt64.self)
        fileSize = try reader.read(UInt64.self)
        fileModificationNanoseconds = try reader.read(Int64.self)
        let runCount = Int(try reader.read(UInt32.self))
        let pathBytes = Int(try reader.read(UInt32.self))
        guard runCount <= reader.remaining / 16 else { throw .truncated(at: reader.base + UInt64(reader.offset)) }
        runs.reserveCapacity(runCount)
        for _ in 0..<runCount {
            let first = try reader.read(UInt64.self)
            runs.append(PageRun(firstPage: first & ~PageRun.inheritedBit, pageCount: try reader.read(UInt64.self),
                                isInherited: first & PageRun.inheritedBit != 0))
        }
        path = try reader.readString(pathBytes)
        dataOffset = header.dataOffset
        dataBytes = header.dataBytes
        try validate(at: reader.base)
    }

    /// Invariants the restorer relies on; `stasis inspect` runs this too.
    public func validate(at offset: UInt64) throws(ImageError) {
        func fail(_ why: String) -> ImageError { .invalidRecord(.memoryArea, at: offset, reason: why) }
        guard flags.rawValue & ~Flags.known.rawValue == 0 else { throw fail("unknown flags \(hex(UInt64(flags.rawValue)))") }
        guard protection & ~7 == 0 else { throw fail("bad protection \(protection)") }
        if flags.contains(.fileObject) && !flags.isSuperset(of: [.shared, .anonymous]) {
            throw fail("a shared file object that is not a shared area")
        }
        guard start < end, start % RecordHeader.pageSize == 0, end % RecordHeader.pageSize == 0 else { throw fail("bad range \(hex(start))-\(hex(end))") }
        if !flags.contains(.vsyscall) {
            guard end <= MemoryAreaRecord.userSpaceTop, start >= 0x1000 else {
                throw fail("range \(hex(start))-\(hex(end)) outside user space")
            }
        }
        let pages = (end - start) / RecordHeader.pageSize
        var previousEnd: UInt64 = 0
        var total: UInt64 = 0
        for run in runs {
            guard run.pageCount > 0, run.firstPage >= previousEnd, run.firstPage < pages,
                run.pageCount <= pages - run.firstPage
            else { throw fail("page run \(run.firstPage)+\(run.pageCount) outside the area's \(pages) pages") }
            previousEnd = run.firstPage + run.pageCount
            if !run.isInherited { total += run.pageCount }
        }
        if flags.contains(.compressed) {
            guard dataBytes == 0, total >= 1, !flags.contains(.shared) else { throw fail("a compressed area with data of its own, no pages, or shared") }
        } else {
            guard total * RecordHeader.pageSize == dataBytes else { throw fail("runs hold \(total) pages but the record stores \(dataBytes) bytes") }
        }
        if flags.intersection(.notStored) != [] && !runs.isEmpty { throw fail("pages stored for an area that is never stored") }
        if isFileBacked, path.utf8.count > Int(STASIS_MAX_PATH) { throw fail("path too long") }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(start); writer.write(end); writer.write(fileOffset)
        writer.write(protection); writer.write(flags.rawValue)
        writer.write(device); writer.write(inode); writer.write(fileSize); writer.write(fileModificationNanoseconds)
        writer.write(UInt32(runs.count)); writer.write(UInt32(path.utf8.count))
        for run in runs {
            writer.write(run.firstPage | (run.isInherited ? PageRun.inheritedBit : 0))
            writer.write(run.pageCount)
        }
        writer.write(bytes: Array(path.utf8))
    }
}
