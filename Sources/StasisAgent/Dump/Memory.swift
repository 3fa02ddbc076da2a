// FREEZE WINDOW: see Freeze/RawSyscall.swift.
//
// Algorithm: for each line of /proc/self/maps (read once, into the arena):
//   classify it (anonymous, file, shared, [heap], [stack], vDSO family, agent scratch);
//   find the pages worth storing with PAGEMAP_SCAN: present or swapped pages of private
//   anonymous memory that are not the shared zero page, and the copy-on-write (non-file)
//   pages of private file mappings; all pages of shared anonymous memory;
//   write one MEMORY_AREA record whose page data is written straight from the area's
//   own addresses (zero copy), made readable for the write if it was not.
// Incremental images (DirtyPages.swift) classify every area first, in the program while it is
// frozen (a copy-on-write child has lost the write-protect bits): written pages are stored, pages
// still protected become inherited runs.
import CStasisABI
import StasisProc
import CStasisShim

/// Writes every memory area of the process into the image.
struct MemoryDumper {
    let scratchRanges: (UInt64, UInt64, UInt64, UInt64)  // agent arena and stack: mapped, not stored
    var pagemapFD: Int32 = -1
    var runs: UnsafeMutablePointer<stasis_page_run_t>
    let runCapacity: Int
    var regions: UnsafeMutablePointer<stasis_page_region_t>
    let regionCapacity: Int
    let pathScratch: UnsafeMutableRawPointer
    /// Incremental images: every area's runs, classified before the writer runs (see classify).
    var planned: UnsafeMutablePointer<stasis_page_run_t>? = nil
    var plannedCount = 0
    var plannedCapacity = 0
    /// Per maps line: (start address, first planned run, run count or UInt64.max: dump as usual).
    var plannedAreas: UnsafeMutablePointer<(UInt64, UInt64, UInt64)>? = nil
    var plannedAreaCount = 0
    var plannedAreaCapacity = 0
    var areaIndex = 0
    /// A tree checkpoint's control block (Checkpoint/Tree): mapped only while the checkpoint lasts, never stored.
    var excluded: (start: UInt64, end: UInt64) = (0, 0)
    /// The copy-on-write writer's private copies of shared memory (start of the area, address of its
    /// copy): fork does not copy MAP_SHARED pages, so the writer copies them before the program thaws
    /// (snapshotSharedAreas) and writes the copies.
    var sharedCopies: UnsafeMutablePointer<(UInt64, UInt64)>? = nil
    var sharedCopyCount = 0
    var sharedCopyCapacity = 0
    /// --compress: private areas' pages go into PAGE_BLOCKS records (PageBlocks.swift); nil: plain.
    var blockWriter: PageBlockWriter? = nil

    @_noAllocation @_noLocks
    static func make(arena: inout FreezeArena, config: UnsafePointer<stasis_agent_config_t>) -> MemoryDumper? {
        let runCapacity = 1 << 20
        let regionCapacity = 4096
        guard
            let runs = arena.take(runCapacity * MemoryLayout<stasis_page_run_t>.stride),
            let regions = arena.take(regionCapacity * MemoryLayout<stasis_page_region_t>.stride),
            let pathScratch = arena.take(Int(STASIS_MAX_PATH) + 1)
        else { return nil }
        let c = config.pointee
        return MemoryDumper(
            scratchRanges: (c.arena_start, c.arena_start + c.arena_bytes, c.stack_start, c.stack_start + c.stack_bytes),
            runs: runs.assumingMemoryBound(to: stasis_page_run_t.self), runCapacity: runCapacity,
            regions: regions.assumingMemoryBound(to: stasis_page_region_t.self), regionCapacity: regionCapacity,
            pathScratch: pathScratch)
    }

    /// Writes one record per line of `maps` (the text of /proc/self/maps).
    @_noAllocation @_noLocks
    mutating func dump(maps: UnsafePointer<UInt8>, count: Int, into image: inout ImageFile) throws(FreezeFailure) {
        let fd = RawSyscall.open(literal: "/proc/self/pagemap", RawFlag.readOnly | RawFlag.closeOnExec)
        if fd < 0 { throw FreezeFailure(step: .readProc, errno: -fd) }
        pagemapFD = Int32(fd)
        defer { RawSyscall.close(pagemapFD) }

        areaIndex = 0
        var lines = ByteCursor(maps, count: count)
        while let line = lines.nextLine() {
            guard line.count > 0 else { continue }
            guard let area = MapsLine(parsing: line.bytes, count: line.count) else {
                throw FreezeFailure(step: .readProc, errno: RawErrno.invalid, object: line.bytes - maps)
            }
            if area.start >= excluded.start && area.end <= excluded.end {
                areaIndex += 1
                continue
            }
            try dumpArea(area, line: line.bytes, into: &image)
            areaIndex += 1
        }
    }

    /// The copy-on-write writer, before the program may run again: a private copy of every shared area
    /// whose pages the image stores (shared anonymous memory, memfds, deleted files: their contents
    /// exist nowhere else), so the image holds them as they were at the freeze, consistent with the
    /// registers and with the other processes of a tree, not as the program rewrites them meanwhile.
    @_noAllocation @_noLocks
    mutating func snapshotSharedAreas(maps: UnsafePointer<UInt8>, count: Int, arena: inout FreezeArena) throws(FreezeFailure) {
        let capacity = 4096
        guard let table = arena.take(capacity * MemoryLayout<(UInt64, UInt64)>.stride) else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace)
        }
        sharedCopies = table.bindMemory(to: (UInt64, UInt64).self, capacity: capacity)
        sharedCopyCapacity = capacity
        sharedCopyCount = 0
        let deletedSuffix: StaticString = " (deleted)"
        var lines = ByteCursor(maps, count: count)
        while let line = lines.nextLine() {
            guard line.count > 0, let area = MapsLine(parsing: line.bytes, count: line.count), area.isShared else { continue }
            if area.start >= excluded.start && area.end <= excluded.end { continue }
            let isDeleted = area.pathCount >= deletedSuffix.utf8CodeUnitCount
                && endsWith(line.bytes + area.pathStart, area.pathCount, deletedSuffix)
            let flags = flags(of: area, line: line.bytes, isDeleted: isDeleted)
            let notStored = UInt32(STASIS_AREA_VDSO | STASIS_AREA_VVAR | STASIS_AREA_VVAR_VCLOCK
                | STASIS_AREA_VSYSCALL | STASIS_AREA_SCRATCH)
            guard flags & notStored == 0, flags & UInt32(STASIS_AREA_ANONYMOUS) != 0 else { continue }
            if area.pathCount >= 5 && startsWith(line.bytes + area.pathStart, area.pathCount, "/SYSV") { continue }
            guard let copies = sharedCopies, sharedCopyCount < sharedCopyCapacity else {
                throw FreezeFailure(step: .tooManyRuns, errno: RawErrno.tooBig)
            }
            let size = Int(area.end - area.start)
            let copy = RawSyscall.call(STASIS_NR_mmap, 0, size, RawFlag.protRead | RawFlag.protWrite,
                                       0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */, -1, 0)
            if copy < 0 && copy > -4096 { throw FreezeFailure(step: .arenaExhausted, errno: -copy) }
            if !area.isReadable {
                _ = RawSyscall.call(STASIS_NR_mprotect, Int(area.start), size, RawFlag.protRead)
            }
            if let from = UnsafeRawPointer(bitPattern: UInt(area.start)), let to = UnsafeMutableRawPointer(bitPattern: copy) {
                to.copyMemory(from: from, byteCount: size)
            }
            copies[sharedCopyCount] = (area.start, UInt64(UInt(bitPattern: copy)))
            sharedCopyCount += 1
        }
    }

    @_noAllocation @_noLocks
    func flags(of area: MapsLine, line: UnsafePointer<UInt8>, isDeleted: Bool) -> UInt32 {
        var flags: UInt32 = area.isShared ? UInt32(STASIS_AREA_SHARED) : 0
        let isFile = area.pathCount > 0 && line[area.pathStart] == UInt8(ascii: "/") && !isDeleted
        if !isFile { flags |= UInt32(STASIS_AREA_ANONYMOUS) }
        if area.pathEquals("[heap]", in: line) { flags |= UInt32(STASIS_AREA_HEAP) }
        if area.pathEquals("[stack]", in: line) { flags |= UInt32(STASIS_AREA_STACK) }
        if area.pathEquals("[vdso]", in: line) { flags |= UInt32(STASIS_AREA_VDSO) }
        if area.pathEquals("[vvar]", in: line) { flags |= UInt32(STASIS_AREA_VVAR) }
        if area.pathEquals("[vvar_vclock]", in: line) { flags |= UInt32(STASIS_AREA_VVAR_VCLOCK) }
        if area.pathEquals("[vsyscall]", in: line) { flags |= UInt32(STASIS_AREA_VSYSCALL) }
        let (arenaStart, arenaEnd, stackStart, stackEnd) = scratchRanges
        if (area.start == arenaStart && area.end == arenaEnd) || (area.start == stackStart && area.end == stackEnd) {
            flags |= UInt32(STASIS_AREA_SCRATCH)
        }
        return flags
    }

    @_noAllocation @_noLocks
    private mutating func dumpArea(_ area: MapsLine, line: UnsafePointer<UInt8>, into image: inout ImageFile)
        throws(FreezeFailure)
    {
        let deletedSuffix: StaticString = " (deleted)"
        let isDeleted = area.pathCount >= deletedSuffix.utf8CodeUnitCount
            && endsWith(line + area.pathStart, area.pathCount, deletedSuffix)
        // SysV shared memory (shmat) cannot come back as the same segment yet: refuse rather than write
        // an image that would restore it as private copies.
        if area.pathCount >= 5 && startsWith(line + area.pathStart, area.pathCount, "/SYSV") {
            throw FreezeFailure(step: .sysvSharedMemory, errno: RawErrno.notSupported, object: Int(bitPattern: UInt(area.start)))
        }
        let flags = flags(of: area, line: line, isDeleted: isDeleted)
        var record = stasis_memory_area_record_t()
        record.start = area.start
        record.end = area.end
        record.file_offset = area.offset
        record.prot = UInt32((area.isReadable ? RawFlag.protRead : 0) | (area.isWritable ? RawFlag.protWrite : 0)
            | (area.isExecutable ? RawFlag.protExec : 0))
        record.flags = flags
        record.path_bytes = UInt32(area.pathCount)

        let notStored = UInt32(STASIS_AREA_VDSO | STASIS_AREA_VVAR
            | STASIS_AREA_VVAR_VCLOCK | STASIS_AREA_VSYSCALL | STASIS_AREA_SCRATCH)
        let isAnonymous = flags & UInt32(STASIS_AREA_ANONYMOUS) != 0
        var runCount = 0
        var runs = self.runs
        if let plannedAreas, let planned, areaIndex < plannedAreaCount, plannedAreas[areaIndex].0 == area.start,
            plannedAreas[areaIndex].2 != UInt64.max
        {
            runs = planned + Int(plannedAreas[areaIndex].1)
            runCount = Int(plannedAreas[areaIndex].2)
        } else if flags & notStored != 0 {
            runCount = 0
        } else if isAnonymous && (area.isShared || isDeleted) {
            // Shared memory's pages may be resident without being mapped here; deleted files
            // cannot be reopened. Store every page.
            runs[0] = stasis_page_run_t(first_page: 0, page_count: (area.end - area.start) / UInt64(STASIS_PAGE_SIZE))
            runCount = 1
        } else if isAnonymous {
            runCount = try scan(area, anyOf: UInt64(STASIS_PAGE_IS_PRESENT | STASIS_PAGE_IS_SWAPPED),
                                excluding: UInt64(STASIS_PAGE_IS_PFNZERO))
        } else if !area.isShared {
            runCount = try scan(area, anyOf: UInt64(STASIS_PAGE_IS_PRESENT | STASIS_PAGE_IS_SWAPPED),
                                excluding: UInt64(STASIS_PAGE_IS_FILE))
        }
        if !isAnonymous {
            try statFile(line + area.pathStart, area.pathCount, into: &record)
        } else if area.isShared && isDeleted && line[area.pathStart] == UInt8(ascii: "/") {
            // A memfd or a deleted file mapped MAP_SHARED: named like its descriptor record (fstat's st_dev
            // encoding of maps' major:minor), so that restart maps the same recreated file again.
            record.flags |= UInt32(STASIS_AREA_FILE_OBJECT)
            record.device = (area.deviceMinor & 0xff) | (area.deviceMajor << 8) | ((area.deviceMinor & ~0xff) << 12)
            record.inode = area.inode
        }
        record.run_count = UInt32(runCount)
        var pages: UInt64 = 0
        for i in 0..<runCount where runs[i].first_page & STASIS_RUN_INHERITED == 0 { pages += runs[i].page_count }
        // Shared areas stay plain: a tree's launcher fills their objects from the image directly.
        let compressed = blockWriter != nil && !area.isShared && pages >= PageBlockWriter.minimumPages
        if compressed { record.flags |= UInt32(STASIS_AREA_COMPRESSED) }
        let dataBytes = compressed ? 0 : pages * UInt64(STASIS_PAGE_SIZE)

        let runBytes = runCount * MemoryLayout<stasis_page_run_t>.stride
        try image.beginRecord(
            kind: UInt32(STASIS_RECORD_MEMORY_AREA),
            payloadBytes: MemoryLayout<stasis_memory_area_record_t>.size + runBytes + area.pathCount,
            dataBytes: dataBytes)
        try image.write(&record, MemoryLayout<stasis_memory_area_record_t>.size)
        if runCount > 0 { try image.write(UnsafeRawPointer(runs), runBytes) }
        if area.pathCount > 0 { try image.write(UnsafeRawPointer(line + area.pathStart), area.pathCount) }
        try image.endPayload()
        if dataBytes > 0 { try writePages(of: area, protection: record.prot, runs: runs, runCount: runCount, into: &image) }
        try image.endRecord()
        if compressed { try writeBlocks(of: area, protection: record.prot, runs: runs, runCount: runCount, into: &image) }
    }

    /// `body` with the area readable: an unreadable area is made readable for its pages' write and put back.
    @_noAllocation @_noLocks
    private mutating func whileReadable(_ area: MapsLine, protection: UInt32, _ body: (inout MemoryDumper) throws(FreezeFailure) -> Void)
        throws(FreezeFailure)
    {
        let needsRead = !area.isReadable
        if needsRead {
            _ = RawSyscall.call(STASIS_NR_mprotect, Int(area.start), Int(area.end - area.start), Int(protection) | RawFlag.protRead)
        }
        defer {
            if needsRead { _ = RawSyscall.call(STASIS_NR_mprotect, Int(area.start), Int(area.end - area.start), Int(protection)) }
        }
        try body(&self)
    }

    /// A compressed area's PAGE_BLOCKS records.
    @_noAllocation @_noLocks
    private mutating func writeBlocks(of area: MapsLine, protection: UInt32, runs: UnsafeMutablePointer<stasis_page_run_t>,
                                      runCount: Int, into image: inout ImageFile) throws(FreezeFailure)
    {
        try whileReadable(area, protection: protection) { (dumper: inout MemoryDumper) throws(FreezeFailure) in
            guard var writer = dumper.blockWriter else { return }
            try writer.write(base: area.start, runs: runs, runCount: runCount, into: &image)
            dumper.blockWriter = writer
        }
    }

    /// The stored runs' pages, straight from their addresses.
    @_noAllocation @_noLocks
    private mutating func writePages(of area: MapsLine, protection: UInt32, runs: UnsafeMutablePointer<stasis_page_run_t>,
                                     runCount: Int, into image: inout ImageFile) throws(FreezeFailure)
    {
        try whileReadable(area, protection: protection) { (dumper: inout MemoryDumper) throws(FreezeFailure) in
            // A shared area the writer copied is written from its copy.
            var base = area.start
            if let copies = dumper.sharedCopies {
                for i in 0..<dumper.sharedCopyCount where copies[i].0 == area.start { base = copies[i].1 }
            }
            for i in 0..<runCount where runs[i].first_page & STASIS_RUN_INHERITED == 0 {
                let address = base + runs[i].first_page * UInt64(STASIS_PAGE_SIZE)
                guard let pointer = UnsafeRawPointer(bitPattern: UInt(address)) else { continue }
                try image.write(pointer, Int(runs[i].page_count * UInt64(STASIS_PAGE_SIZE)))
            }
        }
    }

    /// Fills `runs` with the page runs of `area` in any of the `anyOf` categories and none of `excluding`.
    @_noAllocation @_noLocks
    private mutating func scan(_ area: MapsLine, anyOf: UInt64, excluding: UInt64) throws(FreezeFailure) -> Int {
        var runCount = 0
        let page = UInt64(STASIS_PAGE_SIZE)
        let runs = self.runs, runCapacity = self.runCapacity
        try forEachRegion(fd: pagemapFD, area, anyOf: anyOf, excluding: excluding, returning: anyOf) {
            (start, end, _) throws(FreezeFailure) in
            let first = (start - area.start) / page
            let count = (end - start) / page
            if runCount > 0 && runs[runCount - 1].first_page + runs[runCount - 1].page_count == first {
                runs[runCount - 1].page_count += count  // categories differ, pages are adjacent: one run
            } else {
                guard runCount < runCapacity else { throw FreezeFailure(step: .tooManyRuns, errno: RawErrno.tooBig) }
                runs[runCount] = stasis_page_run_t(first_page: first, page_count: count)
                runCount += 1
            }
        }
        return runCount
    }

    /// PAGEMAP_SCAN over `area`, in as many calls as the region buffer needs, calling `body` with each
    /// region in address order. A call may report pages again that an earlier one ended with (its
    /// walk_end can lie before the last region's end): those are clipped off.
    @_noAllocation @_noLocks
    func forEachRegion(fd: Int32, _ area: MapsLine, anyOf: UInt64, excluding: UInt64, returning: UInt64,
                               _ body: (UInt64, UInt64, UInt64) throws(FreezeFailure) -> Void) throws(FreezeFailure) {
        var cursor = area.start
        var reported = area.start
        while cursor < area.end {
            var arg = stasis_pm_scan_arg_t()
            arg.start = cursor
            arg.end = area.end
            arg.vec = UInt64(UInt(bitPattern: regions))
            arg.vec_len = UInt64(regionCapacity)
            arg.category_inverted = excluding
            arg.category_mask = excluding
            arg.category_anyof_mask = anyOf
            arg.return_mask = returning
            let found = RawSyscall.scanPages(fd, &arg)
            if found < 0 { throw FreezeFailure(step: .scanPages, errno: -found, object: Int(bitPattern: UInt(area.start))) }
            for i in 0..<found {
                let start = max(regions[i].start, reported)
                let end = min(regions[i].end, area.end)
                guard start < end else { continue }
                try body(start, end, regions[i].categories)
                reported = end
            }
            let next = max(arg.walk_end, reported)
            guard next > cursor else { break }
            cursor = next
        }
    }

    /// Records the mapped file's identity so that restart can tell whether it changed.
    @_noAllocation @_noLocks
    private func statFile(_ path: UnsafePointer<UInt8>, _ count: Int, into record: inout stasis_memory_area_record_t)
        throws(FreezeFailure)
    {
        guard count < Int(STASIS_MAX_PATH) else { return }
        let buffer = pathScratch
        let text = buffer.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count { text[i] = path[i] }
        text[count] = 0
        var st = stasis_kstat_t()
        let result = withUnsafeMutablePointer(to: &st) { pointer in
            RawSyscall.call(STASIS_NR_newfstatat, -100, Int(bitPattern: buffer), Int(bitPattern: pointer), 0)
        }
        guard result == 0 else { return }  // vanished since mapping: restart reports it
        record.device = st.st_dev
        record.inode = st.st_ino
        record.file_size = UInt64(bitPattern: st.st_size)
        record.file_mtime_ns = st.st_mtime_sec &* 1_000_000_000 &+ st.st_mtime_nsec
    }
}

@_noAllocation @_noLocks
func endsWith(_ bytes: UnsafePointer<UInt8>, _ count: Int, _ suffix: StaticString) -> Bool {
    let n = suffix.utf8CodeUnitCount
    guard count >= n else { return false }
    let s = suffix.utf8Start
    for i in 0..<n where bytes[count - n + i] != s[i] { return false }
    return true
}
