// FREEZE WINDOW: see RawSyscall.swift.
import CStasisABI
import CStasisShim

/// Streams records into an open image file, tracking the offset so that each record's page data
/// lands on a page boundary (the restorer can map it, Docs/IMAGE-FORMAT.md), and the CRC32C of each
/// record's header fields, payload and data. The CRCs go into the record header with one pwrite once
/// the record is complete. This is the allocation-free twin of StasisImage's ImageWriter (which
/// compaction and the tests use): both frame with the stasis_image_abi.h constants and nothing else.
struct ImageFile {
    let fd: Int32
    private(set) var offset: UInt64 = 0
    private(set) var recordCount: UInt64 = 0
    private var pendingPayloadEnd: UInt64 = 0
    private var pendingDataOffset: UInt64 = 0
    private var pendingDataBytes: UInt64 = 0
    private var recordOffset: UInt64 = 0
    private var payloadCRC: UInt32 = 0
    private var dataCRC: UInt32 = 0
    private var inData = false
    /// The current record's data goes into its data_crc (not for PAGE_BLOCKS: each block has its own).
    private var dataChecksummed = true
    /// HMAC-SHA256 over every byte as first written (CRC fields still zero), when the agent has a key.
    var mac: UnsafeMutablePointer<stasis_hmac_t>? = nil
    private var macFinished = false
    /// One page of zeros (from the arena) for padding.
    let zeros: UnsafeRawPointer
    /// Arena memory where writes smaller than a page (record headers, payloads, padding) collect and
    /// go out together: with 60,000 areas, one write per few records instead of ~5 per record. Page
    /// data is still written straight from its addresses. nil: every write goes out at once.
    /// `offset` counts staged bytes; `flush()` before anything else uses the file.
    var stage: UnsafeMutableRawPointer? = nil
    var stageCapacity = 0
    private var staged = 0
    /// The copy-on-write writer sets this: the disk write of every window of the file starts as soon as
    /// the window is written (`startWriteBack`), so that the final fsync waits for the last window only.
    var progressiveWriteBack = false
    /// Start of the bytes not yet handed to write-back, and of the window handed over before them.
    private var writeBackStart: UInt64 = 0
    private var writeBackPrevious: UInt64 = 0
    /// The copy-on-write writer's CRC thread (stasis_crc_helper.h, `startCRCHelper`): pieces of at least
    /// `helperMinimum` bytes have their CRC computed there while this thread writes them.
    private var crcHelper: UnsafeMutablePointer<stasis_crc_helper_t>? = nil
    static let helperMinimum = 4 << 20

    @_noAllocation @_noLocks
    init(fd: Int32, zeros: UnsafeRawPointer) {
        self.fd = fd
        self.zeros = zeros
    }

    /// Large writes (page data) go out in pieces of this size, each right after its CRC: the write then
    /// copies from the CPU cache what the CRC has just read, where one CRC of a whole run followed by one
    /// write of it read the memory twice (and the copy-on-write writer's first reading of each page is
    /// the slow one: its page table entries are new, Docs/ARCHITECTURE.md 2.4 step 7).
    static let chunkBytes = 1 << 20

    /// Writes bytes that belong to the current record's payload or data (they count in its CRC).
    @_noAllocation @_noLocks
    mutating func write(_ bytes: UnsafeRawPointer, _ count: Int) throws(FreezeFailure) {
        // PAGE_BLOCKS data is not checksummed as a whole (each block has its CRC): nothing for the helper.
        if !inData || dataChecksummed, let helper = crcHelper, count >= Self.helperMinimum {
            try writeWithHelper(helper, bytes, count)
            return
        }
        var done = 0
        repeat {
            let n = min(count - done, Self.chunkBytes)
            if inData {
                if dataChecksummed { dataCRC = _unsafePerformance { stasis_crc32c_update(dataCRC, bytes + done, UInt(n)) } }
            } else {
                payloadCRC = _unsafePerformance { stasis_crc32c_update(payloadCRC, bytes + done, UInt(n)) }
            }
            try writeRaw(bytes + done, n)
            done += n
        } while done < count
    }

    /// `count` bytes starting `offset` bytes into `base`.
    @_noAllocation @_noLocks
    mutating func write(_ base: UnsafeRawPointer, from offset: Int, count: Int) throws(FreezeFailure) {
        try write(base + offset, count)
    }

    /// The CRC on the helper thread, the write here, both over the same bytes at once.
    @_noAllocation @_noLocks
    private mutating func writeWithHelper(
        _ helper: UnsafeMutablePointer<stasis_crc_helper_t>, _ bytes: UnsafeRawPointer, _ count: Int
    ) throws(FreezeFailure) {
        _unsafePerformance { stasis_crc_helper_post(helper, inData ? dataCRC : payloadCRC, bytes, UInt(count)) }
        var crc: UInt32 = 0
        defer {  // also on a failed write: the helper must be idle again before anything else is posted
            crc = _unsafePerformance { stasis_crc_helper_wait(helper) }
            if inData { dataCRC = crc } else { payloadCRC = crc }
        }
        var done = 0
        while done < count {
            let n = min(count - done, Self.chunkBytes)
            try writeRaw(bytes + done, n)
            done += n
        }
    }

    /// The copy-on-write writer only (a thread in the program would be visible to it): starts the CRC
    /// thread on 64 KiB of arena stack. Without one (no arena left, clone failed) CRCs stay on this thread.
    @_noAllocation @_noLocks
    mutating func startCRCHelper(arena: inout FreezeArena) {
        let stackBytes = 64 << 10
        guard let block = arena.take(MemoryLayout<stasis_crc_helper_t>.stride, alignment: 64),
            let stack = arena.take(stackBytes, alignment: Int(STASIS_PAGE_SIZE))
        else { return }
        let helper = block.bindMemory(to: stasis_crc_helper_t.self, capacity: 1)
        let started = _unsafePerformance { stasis_crc_helper_start(helper, stack + stackBytes) }
        if started > 0 { crcHelper = helper }
    }

    @_noAllocation @_noLocks
    mutating func writeRaw(_ bytes: UnsafeRawPointer, _ count: Int) throws(FreezeFailure) {
        if let mac, !macFinished { _unsafePerformance { stasis_hmac_update(mac, bytes, count) } }
        if let stage, count < Int(STASIS_PAGE_SIZE), count <= stageCapacity {
            if staged + count > stageCapacity { try flush() }
            (stage + staged).copyMemory(from: bytes, byteCount: count)
            staged += count
            offset += UInt64(count)
            return
        }
        try flush()
        let written = RawSyscall.writeAll(fd, bytes, count)
        if written < 0 { throw FreezeFailure(step: .writeImage, errno: -written) }
        offset += UInt64(count)
        if progressiveWriteBack { try startWriteBack() }
    }

    /// Bytes per write-back window (progressiveWriteBack).
    static let writeBackWindow: UInt64 = 16 << 20

    /// Once a window of the file is written: sync_file_range(SYNC_FILE_RANGE_WRITE) starts its disk
    /// write without waiting, then the writer waits for the window before it (WAIT_BEFORE | WRITE |
    /// WAIT_AFTER). The disk then works while memory is still being written (one fsync at the end
    /// wrote the whole image after the last byte: the sum of both times instead of the larger), and at
    /// most two windows are dirty at a time. On tmpfs nothing is written back and both calls return at
    /// once. A write error must fail the checkpoint here: the waiting call reports it and advances the
    /// file's error cursor, so the final fsync would not report it again. Where the call is not
    /// supported (EINVAL, ESPIPE, ENOSYS) the writer stops using it and the final fsync does it all.
    @_noAllocation @_noLocks
    private mutating func startWriteBack() throws(FreezeFailure) {
        guard offset - writeBackStart >= Self.writeBackWindow else { return }
        var result = RawSyscall.call(STASIS_NR_sync_file_range, Int(fd), Int(writeBackStart),
                                     Int(offset - writeBackStart), 2 /* SYNC_FILE_RANGE_WRITE */)
        if result == 0 && writeBackPrevious < writeBackStart {
            result = RawSyscall.call(STASIS_NR_sync_file_range, Int(fd), Int(writeBackPrevious),
                                     Int(writeBackStart - writeBackPrevious), 7 /* WAIT_BEFORE | WRITE | WAIT_AFTER */)
        }
        if result == -RawErrno.invalid || result == -29 /* ESPIPE */ || result == -38 /* ENOSYS */ {
            progressiveWriteBack = false
            return
        }
        if result < 0 { throw FreezeFailure(step: .syncImage, errno: -result) }
        writeBackPrevious = writeBackStart
        writeBackStart = offset
    }

    /// Writes the staged bytes.
    @_noAllocation @_noLocks
    mutating func flush() throws(FreezeFailure) {
        guard let stage, staged > 0 else { return }
        let written = RawSyscall.writeAll(fd, stage, staged)
        staged = 0
        if written < 0 { throw FreezeFailure(step: .writeImage, errno: -written) }
    }

    /// pwrite at an earlier offset (CRC fields), without moving the stream; into the staged bytes when
    /// they hold that offset (a patch never spans both: it lies in one header, staged or written whole).
    @_noAllocation @_noLocks
    func patch(_ bytes: UnsafeRawPointer, _ count: Int, at position: UInt64) throws(FreezeFailure) {
        if let stage, staged > 0, position >= offset - UInt64(staged) {
            (stage + Int(position - (offset - UInt64(staged)))).copyMemory(from: bytes, byteCount: count)
            return
        }
        var done = 0
        while done < count {
            let n = RawSyscall.call(STASIS_NR_pwrite64, Int(fd), Int(bitPattern: bytes + done), count - done,
                                    Int(position) + done)
            if n == -RawErrno.interrupted { continue }
            if n <= 0 { throw FreezeFailure(step: .writeImage, errno: n < 0 ? -n : RawErrno.noSpace) }
            done += n
        }
    }

    @_noAllocation @_noLocks
    mutating func pad(to boundary: UInt64) throws(FreezeFailure) {
        while offset % boundary != 0 {
            let gap = boundary - offset % boundary
            try writeRaw(zeros, Int(min(gap, UInt64(STASIS_PAGE_SIZE))))
        }
    }

    /// Writes a record header. The caller then writes exactly `payloadBytes` of payload, calls
    /// `endPayload()`, writes exactly `dataBytes` of page data (if any) and calls `endRecord()`.
    @_noAllocation @_noLocks
    mutating func beginRecord(kind: UInt32, payloadBytes: Int, dataBytes: UInt64 = 0, dataChecksummed: Bool = true) throws(FreezeFailure) {
        self.dataChecksummed = dataChecksummed
        let payloadEnd = offset + UInt64(MemoryLayout<stasis_record_header_t>.size) + UInt64(payloadBytes)
        let page = UInt64(STASIS_PAGE_SIZE)
        recordOffset = offset
        pendingPayloadEnd = payloadEnd
        pendingDataBytes = dataBytes
        pendingDataOffset = dataBytes > 0 ? (payloadEnd + page - 1) / page * page : 0
        var header = stasis_record_header_t(
            kind: kind, payload_bytes: UInt32(payloadBytes), data_offset: pendingDataOffset, data_bytes: dataBytes,
            payload_crc: 0, data_crc: 0)
        inData = false
        payloadCRC = _unsafePerformance { stasis_crc32c_update(stasis_crc32c_begin(), &header, UInt(STASIS_RECORD_CRC_OFFSET)) }
        dataCRC = _unsafePerformance { stasis_crc32c_begin() }
        try writeRaw(&header, MemoryLayout<stasis_record_header_t>.size)
    }

    @_noAllocation @_noLocks
    mutating func endPayload() throws(FreezeFailure) {
        guard offset == pendingPayloadEnd else { throw FreezeFailure(step: .writeImage, errno: RawErrno.invalid) }
        // Data without a record CRC (PAGE_BLOCKS): the CRCs are known now, while the header is still in
        // the stage. Patched after the data, the header's page could be under write-back already
        // (progressive write-back), and the pwrite would wait for the disk: once every 4 MiB.
        if pendingDataBytes > 0 && !dataChecksummed { try patchCRCs() }
        try pad(to: pendingDataBytes > 0 ? UInt64(STASIS_PAGE_SIZE) : UInt64(STASIS_RECORD_ALIGN))
        inData = true
    }

    @_noAllocation @_noLocks
    private func patchCRCs() throws(FreezeFailure) {
        var crcs: (UInt32, UInt32) = _unsafePerformance {
            (stasis_crc32c_end(payloadCRC), pendingDataBytes > 0 && dataChecksummed ? stasis_crc32c_end(dataCRC) : 0)
        }
        try patch(&crcs, MemoryLayout<(UInt32, UInt32)>.size, at: recordOffset + UInt64(STASIS_RECORD_CRC_OFFSET))
    }

    @_noAllocation @_noLocks
    mutating func endRecord() throws(FreezeFailure) {
        if pendingDataBytes > 0 && offset != pendingDataOffset + pendingDataBytes {
            throw FreezeFailure(step: .writeImage, errno: RawErrno.invalid)
        }
        if !(pendingDataBytes > 0 && !dataChecksummed) { try patchCRCs() }  // else endPayload did
        inData = false
        recordCount += 1
    }

    /// The image header and program path, first in the file: fills in the fields the format fixes
    /// (magic, version: STASIS_IMAGE_VERSION if the caller set it, else the plain format; sizes, architecture, page size) around the caller's, writes it with
    /// header_crc = 0 (what the signature covers), pads to the first record and pwrites the CRC.
    /// Returns the header CRC (a tree's manifest binds each member image by it).
    @_noAllocation @_noLocks @discardableResult
    mutating func writeHeader(_ header: inout stasis_image_header_t, program: UnsafeRawPointer, programBytes: Int) throws(FreezeFailure) -> UInt32 {
        let m = STASIS_IMAGE_MAGIC_WORD  // the magic's bytes, first byte lowest
        header.magic = (CChar(truncatingIfNeeded: m), CChar(truncatingIfNeeded: m >> 8), CChar(truncatingIfNeeded: m >> 16),
                        CChar(truncatingIfNeeded: m >> 24), CChar(truncatingIfNeeded: m >> 32), CChar(truncatingIfNeeded: m >> 40),
                        CChar(truncatingIfNeeded: m >> 48), CChar(truncatingIfNeeded: m >> 56))
        // Format 4 only when page data is compressed: a plain image stays readable by older Stasis.
        header.version = header.version == UInt32(STASIS_IMAGE_VERSION) ? header.version : UInt32(STASIS_IMAGE_VERSION_PLAIN)
        header.header_bytes = UInt32(MemoryLayout<stasis_image_header_t>.size)
        header.arch = UInt32(STASIS_ARCH_X86_64)
        header.page_size = UInt32(STASIS_PAGE_SIZE)
        header.program_bytes = UInt32(programBytes)
        header.header_crc = 0
        var crc = _unsafePerformance { stasis_crc32c_update(stasis_crc32c_begin(), &header, UInt(MemoryLayout<stasis_image_header_t>.size)) }
        crc = _unsafePerformance { stasis_crc32c_end(stasis_crc32c_update(crc, program, UInt(programBytes))) }
        try writeRaw(&header, MemoryLayout<stasis_image_header_t>.size)
        try writeRaw(program, programBytes)
        try pad(to: UInt64(STASIS_RECORD_ALIGN))
        try patch(&crc, MemoryLayout<UInt32>.size, at: UInt64(STASIS_HEADER_CRC_OFFSET))
        return crc
    }

    /// The END record: counts, and the HMAC of everything before its mac field when signing.
    @_noAllocation @_noLocks
    mutating func writeEnd() throws(FreezeFailure) {
        var end = stasis_end_record_t()
        end.record_count = recordCount
        end.end_offset = offset
        end.magic = STASIS_END_MAGIC
        end.flags = mac != nil ? STASIS_END_SIGNED : 0
        try beginRecord(kind: UInt32(STASIS_RECORD_END), payloadBytes: MemoryLayout<stasis_end_record_t>.size)
        try write(&end, Int(STASIS_END_MAC_OFFSET))
        if let mac {
            _unsafePerformance { withUnsafeMutableBytes(of: &end.mac) { stasis_hmac_final(mac, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) } }
            macFinished = true
        }
        try write(&end, from: Int(STASIS_END_MAC_OFFSET), count: Int(STASIS_MAC_BYTES))
        try endPayload()
        try endRecord()
        try flush()
    }

    /// A record whose whole payload is one fixed struct followed by optional bytes.
    @_noAllocation @_noLocks
    mutating func writeRecord(
        kind: UInt32, fixed: UnsafeRawPointer, fixedBytes: Int, tail: UnsafeRawPointer? = nil, tailBytes: Int = 0
    ) throws(FreezeFailure) {
        try beginRecord(kind: kind, payloadBytes: fixedBytes + tailBytes)
        try write(fixed, fixedBytes)
        if let tail, tailBytes > 0 { try write(tail, tailBytes) }
        try endPayload()
        try endRecord()
    }
}
