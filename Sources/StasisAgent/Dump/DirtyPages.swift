// FREEZE WINDOW: see Freeze/RawSyscall.swift.
//
// Incremental images (`--incremental`, Docs/IMAGE-FORMAT.md PARENT). Once a checkpoint has
// captured memory, every private writable area is registered with a userfaultfd in asynchronous
// write-protect mode and its present pages are write-protected (PAGEMAP_SCAN with
// PM_SCAN_WP_MATCHING: ranges without page tables get none, so a sparse 64 GiB reservation costs
// nothing). The kernel clears a page's uffd-wp bit on its first write, from user or kernel mode,
// without waking anyone; PAGEMAP_SCAN then reports the page PAGE_IS_WRITTEN. The next checkpoint
// stores the written pages and marks the still-protected ones as inherited from the image taken
// when the protection was set.
//
// Only the page-table bits are trusted: a page keeps its bit only while the same area stays mapped
// and unwritten (munmap + mmap, mremap without UFFD_FEATURE_EVENT_REMAP, MADV_DONTNEED on
// anonymous memory and fork all drop it), so a lost or replaced userfaultfd can only make pages
// look written, never unwritten. The image the protection started from must still be where it
// was, with the header recorded (a failed or deleted checkpoint makes the next one full).
import CStasisABI
import CStasisShim
import StasisProc

struct DirtyPageTracker {
    let state: UnsafeMutablePointer<stasis_tracking_t>
    let pid: Int

    @_noAllocation @_noLocks
    init?(config: UnsafePointer<stasis_agent_config_t>, pid: Int) {
        guard let slot = UnsafeMutablePointer<stasis_tracking_t>(bitPattern: UInt(config.pointee.tracking_slot)) else { return nil }
        state = slot
        self.pid = pid
        if slot.pointee.pid != Int32(truncatingIfNeeded: pid) {
            // A forked child inherited its parent's slot (and maybe the descriptor, which tracks the
            // parent's memory): start over.
            if slot.pointee.pid != 0 && slot.pointee.uffd > 2 && Self.isUserfaultfd(slot.pointee.uffd) {
                RawSyscall.close(slot.pointee.uffd)
            }
            forget()
            slot.pointee.uffd = -1
            slot.pointee.pid = Int32(truncatingIfNeeded: pid)
        }
    }

    /// stasis_tracking_t.base_path: the slot never moves.
    private var basePath: UnsafeMutablePointer<UInt8> {
        (UnsafeMutableRawPointer(state) + Int(STASIS_TRACKING_PATH_OFFSET)).assumingMemoryBound(to: UInt8.self)
    }

    /// The userfaultfd when this process armed one and it is still open as one.
    @_noAllocation @_noLocks
    func descriptor() -> Int32? {
        let fd = state.pointee.uffd
        guard fd > 2, Self.isUserfaultfd(fd) else { return nil }
        return fd
    }

    /// No usable base: the next image is a full one.
    @_noAllocation @_noLocks
    func forget() {
        state.pointee.base_sequence = 0
        state.pointee.base_time_ns = 0
        state.pointee.chain_length = 0
        state.pointee.base_path_bytes = 0
    }

    @_noAllocation @_noLocks
    static func isUserfaultfd(_ fd: Int32) -> Bool {
        // "/proc/self/fd/N" → "anon_inode:[userfaultfd]"
        var path: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var link: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &path) { pathBytes in
            withUnsafeMutableBytes(of: &link) { linkBytes in
                var text = TextBuffer(pathBytes.baseAddress!, capacity: 32)
                text.append("/proc/self/fd/")
                text.append(decimal: Int(fd))
                let n = RawSyscall.readlink(text.cString, linkBytes.baseAddress!, 40)
                let expected: StaticString = "anon_inode:[userfaultfd]"
                guard n == expected.utf8CodeUnitCount else { return false }
                for i in 0..<n where linkBytes[i] != expected.utf8Start[i] { return false }
                return true
            }
        }
    }

    /// The image an incremental image may refer to as its parent: tracking is armed, the chain is
    /// shorter than `maxChain`, the base lies in `directory` and still has the header recorded.
    /// Returns its chain length, or nil (write a full image).
    @_noAllocation @_noLocks
    func usableBase(directory: TextBuffer, maxChain: UInt32) -> UInt32? {
        let s = state.pointee
        guard descriptor() != nil, s.base_sequence > 0 else { return nil }
        let count = Int(s.base_path_bytes)
        guard count > directory.count + 1, count < Int(STASIS_MAX_PATH) else { return nil }
        do {
            let path = basePath
            for i in 0..<directory.count where path[i] != directory.bytes[i] { return nil }
            guard path[directory.count] == UInt8(ascii: "/") else { return nil }
            for i in (directory.count + 1)..<count where path[i] == UInt8(ascii: "/") { return nil }
            guard path[count] == 0 else { return nil }
            var link = ImageLink()
            guard link.read(UnsafeRawPointer(path).assumingMemoryBound(to: CChar.self)) == 1,
                link.header.sequence == s.base_sequence, link.header.time_ns == s.base_time_ns,
                link.header.pid == Int32(truncatingIfNeeded: pid)
            else { return nil }
            // Its chain as the file has it now: `stasis compact` (run by `stasis checkpoint` at
            // --max-chain) may have made it standalone since, same header.
            guard link.hasParent else { return 1 }
            guard link.parent.chain_length >= 2, link.parent.chain_length < maxChain else { return nil }
            return link.parent.chain_length
        }
    }

    /// The base's file name (after the last '/'), for the PARENT record. The slot never moves.
    @_noAllocation @_noLocks
    func baseName() -> (UnsafePointer<UInt8>, Int) {
        let count = Int(state.pointee.base_path_bytes)
        let path = UnsafePointer(basePath)
        var slash = count
        while slash > 0 && path[slash - 1] != UInt8(ascii: "/") { slash -= 1 }
        return (path + slash, count - slash)
    }

    /// After memory was captured as the image at `path`: register every private writable area
    /// (again: new areas appear, registering twice is harmless) and write-protect its present
    /// pages; the image becomes the base of the next incremental one. False if no userfaultfd can
    /// be had (unprivileged without UFFD_USER_MODE_ONLY support): images stay full.
    ///
    /// The uffd-wp bits are trusted only while their area stays registered. This kernel (6.18) can
    /// drop an area's registration behind our back and leave its bits: in the dirty fixture the
    /// 128 MiB buffer's area, merged with a 16-page neighbour just after the fixture mremap'ed a
    /// small registered area (we have no UFFD_FEATURE_EVENT_REMAP, so mremap resets the moved
    /// area's registration), showed VmFlags without "uw", and writes there completed while the pages
    /// kept their bit (/proc/self/pagemap right after each write): incremental images then
    /// inherited stale pages (about 1 full test run in 5, under load). So classification
    /// counts the pages of an unregistered area as written (Memory.swift), and arming such an area
    /// clears its stale bits first: a page left writable with its bit set would never fault again.
    @_noAllocation @_noLocks
    func arm(maps: UnsafePointer<UInt8>, count: Int, pagemapFD: Int32, scratchRanges: (UInt64, UInt64, UInt64, UInt64),
             regions: UnsafeMutablePointer<stasis_page_region_t>,
             path: TextBuffer, sequence: UInt64, timeNanoseconds: UInt64, chainLength: UInt32) -> Bool
    {
        guard let uffd = prepare() else { return false }
        var lines = ByteCursor(maps, count: count)
        while let line = lines.nextLine() {
            guard let area = MapsLine(parsing: line.bytes, count: line.count), area.isWritable, !area.isShared,
                area.start != scratchRanges.0, area.start != scratchRanges.2
            else { continue }
            let wasTracked = Self.isTracked(area, pagemapFD: pagemapFD, regions: regions)
            var register: (UInt64, UInt64, UInt64, UInt64) = (area.start, area.end - area.start, STASIS_UFFDIO_REGISTER_MODE_WP, 0)
            let registered = withUnsafeMutablePointer(to: &register) { pointer in
                RawSyscall.call(STASIS_NR_ioctl, Int(uffd), Int(STASIS_UFFDIO_REGISTER), Int(bitPattern: pointer))
            }
            guard registered == 0 else { continue }  // e.g. VM_PFNMAP: its pages always count as written
            if !wasTracked {
                // Bits left from an earlier registration are stale (the area lost it meanwhile:
                // writes kept them, and such a page may even be writable): clear them all first, so
                // that the scan below protects every present page afresh.
                var clear: (UInt64, UInt64, UInt64) = (area.start, area.end - area.start, 0)
                _ = withUnsafeMutablePointer(to: &clear) { pointer in
                    RawSyscall.call(STASIS_NR_ioctl, Int(uffd), Int(STASIS_UFFDIO_WRITEPROTECT), Int(bitPattern: pointer))
                }
            }
            var cursor = area.start
            while cursor < area.end {
                var arg = stasis_pm_scan_arg_t()
                arg.flags = STASIS_PM_SCAN_WP_MATCHING
                arg.start = cursor
                arg.end = area.end
                arg.category_anyof_mask = UInt64(STASIS_PAGE_IS_PRESENT | STASIS_PAGE_IS_SWAPPED)
                let result = RawSyscall.scanPages(pagemapFD, &arg)
                guard result >= 0, arg.walk_end > cursor else { break }
                cursor = arg.walk_end
            }
        }
        let n = min(path.count, Int(STASIS_MAX_PATH) - 1)
        let bytes = basePath
        for i in 0..<n { bytes[i] = path.bytes[i] }
        bytes[n] = 0
        state.pointee.base_path_bytes = UInt32(n)
        state.pointee.base_sequence = sequence
        state.pointee.base_time_ns = timeNanoseconds
        state.pointee.chain_length = chainLength
        return true
    }

    /// Whether `area` is registered for asynchronous write protection now (PAGE_IS_WPALLOWED on its
    /// first present page). An area without present pages counts as tracked: it has no bits to clear.
    @_noAllocation @_noLocks
    static func isTracked(_ area: MapsLine, pagemapFD: Int32, regions: UnsafeMutablePointer<stasis_page_region_t>) -> Bool {
        var arg = stasis_pm_scan_arg_t()
        arg.start = area.start
        arg.end = area.end
        arg.vec = UInt64(UInt(bitPattern: regions))
        arg.vec_len = 1
        arg.max_pages = 1
        arg.category_anyof_mask = UInt64(STASIS_PAGE_IS_PRESENT | STASIS_PAGE_IS_SWAPPED)
        arg.return_mask = UInt64(STASIS_PAGE_IS_WPALLOWED)
        let found = RawSyscall.scanPages(pagemapFD, &arg)
        guard found == 1 else { return found == 0 }
        return regions[0].categories & UInt64(STASIS_PAGE_IS_WPALLOWED) != 0
    }

    /// The userfaultfd, opened now if this process has none; nil (and no base) when the kernel refuses
    /// one (seccomp, an old kernel): images stay full.
    @_noAllocation @_noLocks
    func prepare() -> Int32? {
        if let fd = descriptor() { return fd }
        guard let fd = openUserfaultfd() else {
            forget()
            return nil
        }
        state.pointee.uffd = fd
        return fd
    }

    /// userfaultfd(UFFD_USER_MODE_ONLY) with WP_ASYNC, moved out of the program's way (fd ≥ 1000 when
    /// the limit allows) and close-on-exec.
    @_noAllocation @_noLocks
    private func openUserfaultfd() -> Int32? {
        let flags = Int(RawFlag.closeOnExec) | 0o4000 /* O_NONBLOCK */ | Int(STASIS_UFFD_USER_MODE_ONLY)
        var fd = RawSyscall.call(STASIS_NR_userfaultfd, flags)
        if fd < 0 { fd = RawSyscall.call(STASIS_NR_userfaultfd, flags & ~Int(STASIS_UFFD_USER_MODE_ONLY)) }
        guard fd >= 0 else { return nil }
        var api: (UInt64, UInt64, UInt64) = (STASIS_UFFD_API, STASIS_UFFD_FEATURE_WP_ASYNC, 0)
        let ok = withUnsafeMutablePointer(to: &api) { pointer in
            RawSyscall.call(STASIS_NR_ioctl, fd, Int(STASIS_UFFDIO_API), Int(bitPattern: pointer))
        }
        guard ok == 0 else {
            RawSyscall.close(Int32(fd))
            return nil
        }
        let high = RawSyscall.call(STASIS_NR_fcntl, fd, 1030 /* F_DUPFD_CLOEXEC */, 1000)
        if high >= 0 {
            RawSyscall.close(Int32(fd))
            return Int32(high)
        }
        return Int32(fd)
    }
}

/// An image file's header and, for an incremental image, its PARENT record (always the first
/// record): enough to follow a chain without decoding the image (the base check, --keep).
struct ImageLink {
    var header = stasis_image_header_t()
    var parent = stasis_parent_record_t()
    var hasParent = false

    /// Reads them from the file at `path`: 1 read, 0 there is no such file, -1 unreadable or cut short.
    @_noAllocation @_noLocks
    mutating func read(_ path: UnsafePointer<CChar>) -> Int {
        let fd = RawSyscall.open(path, RawFlag.readOnly | RawFlag.closeOnExec | RawFlag.noFollow)
        if fd == -RawErrno.noEntry { return 0 }
        guard fd >= 0 else { return -1 }
        defer { RawSyscall.close(Int32(fd)) }
        let headerBytes = MemoryLayout<stasis_image_header_t>.size
        let recordBytes = MemoryLayout<stasis_record_header_t>.size
        let parentBytes = MemoryLayout<stasis_parent_record_t>.size
        var record = stasis_record_header_t()
        let n = withUnsafeMutablePointer(to: &header) { RawSyscall.call(STASIS_NR_pread64, fd, Int(bitPattern: $0), headerBytes, 0) }
        guard n == headerBytes else { return -1 }
        let first = (headerBytes + Int(header.program_bytes) + Int(STASIS_RECORD_ALIGN) - 1) & ~(Int(STASIS_RECORD_ALIGN) - 1)
        let m = withUnsafeMutablePointer(to: &record) { RawSyscall.call(STASIS_NR_pread64, fd, Int(bitPattern: $0), recordBytes, first) }
        guard m == recordBytes else { return -1 }
        hasParent = record.kind == UInt32(STASIS_RECORD_PARENT)
        guard hasParent else { return 1 }
        let p = withUnsafeMutablePointer(to: &parent) {
            RawSyscall.call(STASIS_NR_pread64, fd, Int(bitPattern: $0), parentBytes, first + recordBytes)
        }
        return p == parentBytes ? 1 : -1
    }
}

extension MemoryDumper {
    /// Incremental images: classifies every private area's pages while the program is frozen and
    /// still holds its write-protect bits. Written (or never protected) pages are stored; pages
    /// still protected are inherited from the parent; zero pages and unmodified file pages are not
    /// stored. Shared and never-stored areas are left to dumpArea.
    @_noAllocation @_noLocks
    mutating func classify(maps: UnsafePointer<UInt8>, count: Int, arena: inout FreezeArena) throws(FreezeFailure) {
        plannedCapacity = 4 << 20
        plannedAreaCapacity = 1 << 18
        guard let runMemory = arena.take(plannedCapacity * MemoryLayout<stasis_page_run_t>.stride),
            let areaMemory = arena.take(plannedAreaCapacity * 24)
        else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
        let plan = runMemory.assumingMemoryBound(to: stasis_page_run_t.self)
        let areas = areaMemory.assumingMemoryBound(to: (UInt64, UInt64, UInt64).self)
        planned = plan
        plannedAreas = areas
        plannedCount = 0
        plannedAreaCount = 0
        let fd = RawSyscall.open(literal: "/proc/self/pagemap", RawFlag.readOnly | RawFlag.closeOnExec)
        if fd < 0 { throw FreezeFailure(step: .readProc, errno: -fd) }
        defer { RawSyscall.close(Int32(fd)) }
        let page = UInt64(STASIS_PAGE_SIZE)
        var lines = ByteCursor(maps, count: count)
        while let line = lines.nextLine() {
            guard line.count > 0, let area = MapsLine(parsing: line.bytes, count: line.count) else { continue }
            guard plannedAreaCount < plannedAreaCapacity else { throw FreezeFailure(step: .tooManyRuns, errno: RawErrno.tooBig) }
            let deletedSuffix: StaticString = " (deleted)"
            let isDeleted = area.pathCount >= deletedSuffix.utf8CodeUnitCount
                && endsWith(line.bytes + area.pathStart, area.pathCount, deletedSuffix)
            let flags = flags(of: area, line: line.bytes, isDeleted: isDeleted)
            let notStored = UInt32(STASIS_AREA_VDSO | STASIS_AREA_VVAR | STASIS_AREA_VVAR_VCLOCK
                | STASIS_AREA_VSYSCALL | STASIS_AREA_SCRATCH)
            let isAnonymous = flags & UInt32(STASIS_AREA_ANONYMOUS) != 0
            let entry = plannedAreaCount
            plannedAreaCount += 1
            guard flags & notStored == 0, !area.isShared, !(isAnonymous && isDeleted) else {
                areas[entry] = (area.start, 0, UInt64.max)
                continue
            }
            let first = plannedCount
            let anyOf = UInt64(STASIS_PAGE_IS_PRESENT | STASIS_PAGE_IS_SWAPPED)
            let returned = UInt64(STASIS_PAGE_IS_WRITTEN | STASIS_PAGE_IS_PFNZERO | STASIS_PAGE_IS_FILE | STASIS_PAGE_IS_WPALLOWED)
            try forEachRegion(fd: Int32(fd), area, anyOf: anyOf, excluding: 0, returning: returned) {
                (start, end, categories) throws(FreezeFailure) in
                if isAnonymous && categories & UInt64(STASIS_PAGE_IS_PFNZERO) != 0 { return }
                if !isAnonymous && categories & UInt64(STASIS_PAGE_IS_FILE) != 0 { return }
                // A page's uffd-wp bit means "unwritten" only while its area is still registered
                // (PAGE_IS_WPALLOWED): an area that lost its registration keeps stale bits.
                let tracked = categories & UInt64(STASIS_PAGE_IS_WPALLOWED) != 0
                let inherited: UInt64 = categories & UInt64(STASIS_PAGE_IS_WRITTEN) != 0 || !tracked ? 0 : STASIS_RUN_INHERITED
                let firstPage = (start - area.start) / page
                let pages = (end - start) / page
                if plannedCount > first, plan[plannedCount - 1].first_page & STASIS_RUN_INHERITED == inherited,
                    (plan[plannedCount - 1].first_page & ~STASIS_RUN_INHERITED) + plan[plannedCount - 1].page_count == firstPage
                {
                    plan[plannedCount - 1].page_count += pages
                } else {
                    guard plannedCount < plannedCapacity else { throw FreezeFailure(step: .tooManyRuns, errno: RawErrno.tooBig) }
                    plan[plannedCount] = stasis_page_run_t(first_page: firstPage | inherited, page_count: pages)
                    plannedCount += 1
                }
            }
            areas[entry] = (area.start, UInt64(first), UInt64(plannedCount - first))
        }
    }
}
