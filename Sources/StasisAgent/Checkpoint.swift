// FREEZE WINDOW: see Freeze/RawSyscall.swift. This is the whole checkpoint, run by the thread that
// took the trigger signal, on the agent's own stack.
//
// Algorithm:
//   1. a `stasis checkpoint` request (sigqueue value = its token): take it once (CONTROL/accepted,
//      O_EXCL: a re-sent signal finds it and is dropped) and read CONTROL/request for --dir and
//      options, CONTROL = /tmp/stasis-UID-TOKEN (private, the launcher's; Docs/ARCHITECTURE.md 2.6);
//      else STASIS_DIR
//   2. create DIR/.NAME-PID.tmp (0600, O_EXCL) and lock it (an OFD lock, shared with a copy-on-write
//      writer): a locked one is a previous checkpoint still writing, answered "busy"; then freeze
//      and write: header, PROCESS, AGENT, SIGNAL_ACTIONS, THREAD, PENDING_SIGNAL..., FILE_DESCRIPTOR...,
//      MEMORY_AREA..., END
//   3. fsync, rename to DIR/COMM-PID-SEQ.stasis without replacing anything, fsync DIR,
//      point DIR/COMM-PID.latest at it
//   4. report: CONTROL/result for `stasis checkpoint`, else errors on fd 2
// Any failure removes the temporary file; the program always continues.
import CStasisABI
import StasisProc
import CStasisShim

/// Entry point from the C signal handler. Returns 0 or -errno, or 1 when the signal carried no
/// request of ours (signal_entry.c then gives it to the program's handler, if it has one).
@_cdecl("stasis_agent_checkpoint")
@_noAllocation @_noLocks
public func stasisAgentCheckpoint(_ capture: UnsafeMutablePointer<stasis_capture_t>) -> Int32 {
    let config = capture.pointee.config
    // The arena starts with the followers' capture slots (constructor.c); scratch comes after them.
    let slotBytes = (Int(config.pointee.slot_capacity) * MemoryLayout<stasis_thread_slot_t>.stride + 4095) & ~4095
    guard let base = UnsafeMutableRawPointer(bitPattern: UInt(config.pointee.arena_start) + UInt(slotBytes)) else { return -22 }
    // ... and ends with the key slot (one page).
    // ... and ends with the tracking slot (two pages) and the key slot (one page).
    var arena = FreezeArena(base: base, capacity: Int(config.pointee.arena_bytes) - slotBytes - 4096 - Int(STASIS_TRACKING_BYTES))
    guard var job = CheckpointJob(arena: &arena, capture: capture) else { return -12 }
    switch job.acceptRequest() {
    case .take: break
    case .repeated: return 0
    case .notOurs: return 1  // the program's own sigqueue, or a request given up: signal_entry.c decides
    }
    let result = job.run(arena: &arena)
    if !job.delegated { job.report(result) }
    if job.isWriterChild {
        // The copy-on-write writer never returns into the program's code.
        _ = RawSyscall.call(STASIS_NR_exit_group, result == nil ? 0 : 1)
    }
    return result.map { -Int32(truncatingIfNeeded: $0.errno) } ?? 0
}

struct CheckpointJob {
    let capture: UnsafeMutablePointer<stasis_capture_t>
    var directory: TextBuffer
    var finalPath: TextBuffer
    var tempPath: TextBuffer
    var scratch: TextBuffer
    var message: TextBuffer
    let zeros: UnsafeMutableRawPointer
    let pid: Int
    let uid: Int
    var imageFD: Int32 = -1
    /// Monotonic nanoseconds: checkpoint start, all threads stopped, threads thawed, image published.
    var startedAt: Int64 = 0, frozenAt: Int64 = 0, thawedAt: Int64 = 0, publishedAt: Int64 = 0
    var threadCount = 1
    /// Record unsupported descriptors as such (restart puts /dev/null there) instead of failing.
    var skipUnsupported = false
    /// Copy-on-write (default): after the non-memory records, a detached copy writes memory and publishes.
    var forkWriter = false
    /// This process is that child: it reports and exits instead of returning to the program.
    var isWriterChild = false
    /// This process handed the rest to a child: the child reports.
    var delegated = false
    /// --incremental: store only pages written since the previous image (Dump/DirtyPages.swift).
    var incremental = false
    /// Images in this image's chain: 1 for a full image.
    var chainLength: UInt32 = 1
    /// --incremental was asked for but no userfaultfd could be had.
    var trackingUnavailable = false
    /// This image's header.time_ns (a later incremental image names it as its parent by it).
    var imageTimeNanoseconds: UInt64 = 0

    @_noAllocation @_noLocks
    init?(arena: inout FreezeArena, capture: UnsafeMutablePointer<stasis_capture_t>) {
        let pathCapacity = Int(STASIS_MAX_PATH) + 256
        guard let d = arena.take(pathCapacity), let f = arena.take(pathCapacity), let t = arena.take(pathCapacity),
            let s = arena.take(pathCapacity), let m = arena.take(pathCapacity),
            let z = arena.take(Int(STASIS_PAGE_SIZE), alignment: Int(STASIS_PAGE_SIZE))
        else { return nil }
        self.capture = capture
        directory = TextBuffer(d, capacity: pathCapacity)
        finalPath = TextBuffer(f, capacity: pathCapacity)
        tempPath = TextBuffer(t, capacity: pathCapacity)
        scratch = TextBuffer(s, capacity: pathCapacity)
        message = TextBuffer(m, capacity: pathCapacity)
        zeros = z
        for i in 0..<Int(STASIS_PAGE_SIZE) { z.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        pid = RawSyscall.call(STASIS_NR_getpid)
        uid = RawSyscall.call(STASIS_NR_getuid)
        startedAt = monotonicNanoseconds()
        skipUnsupported = capture.pointee.config.pointee.skip_unsupported != 0
        // --checkpoint-on exits right after: the image must be complete by then, so no child writer.
        forkWriter = capture.pointee.config.pointee.fork_writer != 0
            && capture.pointee.signal_number != capture.pointee.config.pointee.exit_signal
        incremental = capture.pointee.config.pointee.incremental != 0
    }

    /// Writes the image; nil on success.
    @_noAllocation @_noLocks
    mutating func run(arena: inout FreezeArena) -> FreezeFailure? {
        do throws(FreezeFailure) {
            try chooseDirectory()
            try writeImage(arena: &arena)
            return nil
        } catch {
            if imageFD >= 0 {
                RawSyscall.close(imageFD)
                imageFD = -1
            }
            if tempPath.count > 0 { _ = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: tempPath.cString)) }
            return error
        }
    }

    enum RequestVerdict { case take, repeated, notOurs }

    /// For a `stasis checkpoint` request (sigqueue value = its token): `.take` it once; `.repeated`
    /// when it was already taken (the launcher re-sends until it sees CONTROL/accepted); `.notOurs`
    /// when no private control directory of ours has that name (the program's own sigqueue, or a
    /// request its launcher gave up). A plain trigger (kill) is always taken.
    @_noAllocation @_noLocks
    mutating func acceptRequest() -> RequestVerdict {
        guard capture.pointee.request_id != 0 else { return .take }
        scratch.removeAll()
        appendControlPath(&scratch)
        let dir = RawSyscall.open(scratch.cString, RawFlag.readOnly | RawFlag.directory | RawFlag.noFollow | RawFlag.closeOnExec)
        guard dir >= 0 else { return .notOurs }
        // struct stat: st_mode at byte 24, st_uid at byte 28. Only a directory the launcher made for
        // this user (0700, owned by it) is trusted: another user cannot plant requests or read results.
        var status: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                     UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let statted = withUnsafeMutablePointer(to: &status) { RawSyscall.call(STASIS_NR_fstat, dir, Int(bitPattern: $0)) }
        RawSyscall.close(Int32(dir))
        let mode = UInt32(truncatingIfNeeded: status.3), owner = UInt32(truncatingIfNeeded: status.3 >> 32)
        guard statted == 0, mode & 0o170000 == 0o040000, mode & 0o077 == 0,
            Int(owner) == RawSyscall.call(STASIS_NR_geteuid)
        else { return .notOurs }
        scratch.append("/accepted")
        let marker = RawSyscall.open(scratch.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.exclusive
            | RawFlag.noFollow | RawFlag.closeOnExec, 0o600)
        scratch.removeAll()
        guard marker >= 0 else { return .repeated }  // EEXIST: a repeat of a request already taken
        RawSyscall.close(Int32(marker))
        return .take
    }

    @_noAllocation @_noLocks
    private mutating func chooseDirectory() throws(FreezeFailure) {
        directory.append(cStringAt: &capture.pointee.config.pointee.image_dir)
        guard capture.pointee.request_id != 0 else { return }
        scratch.removeAll()
        appendControlPath(&scratch)
        scratch.append("/request")
        // Request file: "DIR\nOPTIONS\n[key-file PATH\n]" (DIR empty: the default), written by
        // `stasis checkpoint` in its private control directory before it signals us.
        let text = message.bytes
        let n = ProcFile.read(scratch.cString, into: UnsafeMutableRawPointer(text), capacity: message.capacity)
        scratch.removeAll()
        guard n > 0 else { return }
        var cursor = ByteCursor(text, count: n)
        let start = cursor.index
        cursor.skipPast(UInt8(ascii: "\n"))
        let end = cursor.index > start && text[cursor.index - 1] == UInt8(ascii: "\n") ? cursor.index - 1 : cursor.index
        // OPTIONS: words separated by spaces.
        while cursor.index < n && text[cursor.index] != UInt8(ascii: "\n") {
            if cursor.skipWord("skip-unsupported") { skipUnsupported = true }
            else if cursor.skipWord("nofork") { forkWriter = false }
            else if cursor.skipWord("incremental") { incremental = true }
            else if cursor.skipWord("full") { incremental = false }
            else { cursor.index += 1 }
        }
        cursor.skipPast(UInt8(ascii: "\n"))
        if cursor.skipWord("key-file ") { loadKey(text + cursor.index, n - cursor.index) }
        if end > start && text[start] == UInt8(ascii: "/") {
            directory.removeAll()
            directory.append(bytes: text + start, count: end - start)
        }
        message.removeAll()
    }

    /// --fork: reaps the intermediate child (waitid on the pid in state.writer_pid).
    /// Returns the child's exit status (-1 if there was none to reap).
    @_noAllocation @_noLocks @discardableResult
    private func reapPreviousWriter() -> Int32 {
        let state = capture.pointee.state
        let writer = state.pointee.writer_pid
        guard writer > 0 else { return -1 }
        var info: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                   UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutablePointer(to: &info) { pointer in
            // waitid(P_PID, writer, WEXITED | __WALL): it was cloned without an exit signal.
            while RawSyscall.call(247 /* waitid */, 1, Int(writer), Int(bitPattern: pointer), 4 | 0x4000_0000, 0)
                == -RawErrno.interrupted {}
        }
        state.pointee.writer_pid = 0
        // siginfo_t: si_code at byte 8 (CLD_EXITED = 1), si_status at byte 24.
        return UInt32(truncatingIfNeeded: info.1) == 1 ? Int32(truncatingIfNeeded: info.3) : -1
    }

    /// Exit status of the intermediate child when its memory map is not the program's.
    static let mapsDifferInChild = 3

    /// In the intermediate child: does /proc/self/maps read the same as the program's did before the clone?
    /// (fork copies every area one to one, except MADV_DONTFORK ones.)
    @_noAllocation @_noLocks
    private func childSeesSameMaps(_ parentMaps: UnsafeMutableRawPointer, _ parentCount: Int,
                                   arena: inout FreezeArena) -> Bool {
        let capacity = parentCount + 2
        guard let mine = arena.take(capacity) else { return false }
        let count = ProcFile.read(literal: "/proc/self/maps", into: mine, capacity: capacity)
        guard count == parentCount else { return false }
        let a = mine.assumingMemoryBound(to: UInt8.self), b = parentMaps.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count where a[i] != b[i] { return false }
        return true
    }

    /// `stasis checkpoint --key FILE`: reads FILE (path up to the newline) into the key slot.
    @_noAllocation @_noLocks
    private mutating func loadKey(_ path: UnsafeMutablePointer<UInt8>, _ count: Int) {
        var end = 0
        while end < count && path[end] != UInt8(ascii: "\n") { end += 1 }
        guard end > 0, end < count else { return }
        path[end] = 0
        guard let slot = UnsafeMutablePointer<stasis_key_slot_t>(bitPattern: UInt(capture.pointee.config.pointee.key_slot))
        else { return }
        let fd = RawSyscall.open(UnsafeRawPointer(path).assumingMemoryBound(to: CChar.self), RawFlag.readOnly | RawFlag.closeOnExec)
        guard fd >= 0 else { return }
        let n = RawSyscall.read(Int32(fd), UnsafeMutableRawPointer(slot) + 4, Int(STASIS_KEY_MAX))
        RawSyscall.close(Int32(fd))
        slot.pointee.key_bytes = n > 0 ? UInt32(n) : 0
    }

    /// /tmp/stasis-EUID-TOKEN (TOKEN: the request's sigqueue value in hex), the private directory
    /// `stasis checkpoint` made for this one request. Its name cannot be guessed, so another user
    /// cannot take it first.
    @_noAllocation @_noLocks
    func appendControlPath(_ buffer: inout TextBuffer) {
        buffer.append("/tmp/stasis-")
        buffer.append(decimal: RawSyscall.call(STASIS_NR_geteuid))
        buffer.append("-")
        buffer.append(hex: UInt64(bitPattern: capture.pointee.request_id))
    }

    @_noAllocation @_noLocks
    private func appendImageName(_ buffer: inout TextBuffer, sequence: UInt64) {
        buffer.append(bytes: directory.bytes, count: directory.count)
        buffer.append("/")
        appendProgramName(&buffer)
        buffer.append("-")
        buffer.append(decimal: pid)
        buffer.append("-")
        buffer.append(decimal: Int(sequence), minimumDigits: 4)
        buffer.append(".stasis")
    }

    /// DIR/.COMM-PID plus `suffix`: the agent's temporary names beside the images.
    @_noAllocation @_noLocks
    private func appendHiddenName(_ buffer: inout TextBuffer, suffix: StaticString) {
        buffer.append(bytes: directory.bytes, count: directory.count)
        buffer.append("/.")
        appendProgramName(&buffer)
        buffer.append("-")
        buffer.append(decimal: pid)
        buffer.append(suffix)
    }

    /// The thread's comm, limited to characters that are safe in a file name.
    @_noAllocation @_noLocks
    private func appendProgramName(_ buffer: inout TextBuffer) {
        // The process's name (/proc/self/comm is the main thread's), not the name of whichever
        // thread took the signal.
        var name: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &name) { bytes in
            let n = ProcFile.read(literal: "/proc/self/comm", into: bytes.baseAddress!, capacity: 24)
            if n <= 0 { _ = RawSyscall.call(STASIS_NR_prctl, 16 /* PR_GET_NAME */, Int(bitPattern: bytes.baseAddress)) }
            var wrote = false
            for i in 0..<15 {
                if bytes[i] == UInt8(ascii: "\n") { break }
                let c = bytes[i]
                if c == 0 { break }
                let safe = (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                    || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
                buffer.append(safe ? c : UInt8(ascii: "_"))
                wrote = true
            }
            if !wrote { buffer.append("process") }
        }
    }

    /// After a lazy restart a pager process brings pages in for a second or so; pages not yet there
    /// would be missing from an image. Waits (threads still running) until it is gone, up to 120 s.
    @_noAllocation @_noLocks
    private mutating func waitForPager() throws(FreezeFailure) {
        let state = capture.pointee.state
        let pager = Int(state.pointee.pager_pid)
        guard pager > 0 else { return }
        let deadline = monotonicNanoseconds() + 120_000_000_000
        while true {
            // /proc/PID/stat: "PID (stasis-pager) S ..."; gone, reaped into another process, or a zombie: done.
            scratch.removeAll()
            scratch.append("/proc/")
            scratch.append(decimal: pager)
            scratch.append("/stat")
            // (the whole line: ProcFile.read refuses a file that does not fit)
            let n = ProcFile.read(scratch.cString, into: UnsafeMutableRawPointer(message.bytes), capacity: message.capacity)
            let text = message.bytes
            let name: StaticString = ") "
            var running = false
            if n > 0 {
                var cursor = ByteCursor(text, count: n)
                cursor.skipPast(UInt8(ascii: "("))
                if cursor.skipWord("stasis-pager") && cursor.skipWord(name) && cursor.index < n {
                    running = text[cursor.index] != UInt8(ascii: "Z") && text[cursor.index] != UInt8(ascii: "X")
                }
            }
            message.removeAll()
            scratch.removeAll()
            if !running {
                state.pointee.pager_pid = 0
                return
            }
            if monotonicNanoseconds() > deadline { throw FreezeFailure(step: .stillPagingIn, errno: 0, object: pager) }
            var pause: (Int, Int) = (0, 2_000_000)
            withUnsafeMutablePointer(to: &pause) { _ = RawSyscall.call(35 /* nanosleep */, Int(bitPattern: $0), 0) }
        }
    }

    @_noAllocation @_noLocks
    private mutating func writeImage(arena: inout FreezeArena) throws(FreezeFailure) {
        try createTemporaryFile()
        try waitForPager()
        // Every other thread stops in its handler and captures itself (FreezeWindow.swift).
        guard var freeze = FreezeWindow(arena: &arena, capture: capture) else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace)
        }
        var thawed = false
        defer { if !thawed { freeze.thaw() } }
        let followers = try freeze.freezeOthers()
        frozenAt = monotonicNanoseconds()
        threadCount = 1 + followers
        let state = capture.pointee.state
        // The first free number: a restored process continues an old numbering, and never replaces an image.
        var sequence = state.pointee.sequence + 1
        while true {
            finalPath.removeAll()
            appendImageName(&finalPath, sequence: sequence)
            let exists = RawSyscall.call(STASIS_NR_newfstatat, -100, Int(bitPattern: finalPath.cString),
                                         Int(bitPattern: scratch.bytes), 0x100 /* AT_SYMLINK_NOFOLLOW */)
            if exists != 0 || sequence > state.pointee.sequence + 100_000 { break }
            sequence += 1
        }
        // Before memory is written: the image holds its own number, and a restored process goes on from it.
        state.pointee.sequence = sequence

        var image = ImageFile(fd: imageFD, zeros: UnsafeRawPointer(zeros))
        if let slot = UnsafeMutablePointer<stasis_key_slot_t>(bitPattern: UInt(capture.pointee.config.pointee.key_slot)),
            slot.pointee.key_bytes > 0, slot.pointee.key_bytes <= UInt32(STASIS_KEY_MAX),
            let macMemory = arena.take(MemoryLayout<stasis_hmac_t>.size, alignment: 16)
        {
            let mac = macMemory.assumingMemoryBound(to: stasis_hmac_t.self)
            _unsafePerformance {
                stasis_hmac_init(mac, UnsafeRawPointer(slot).assumingMemoryBound(to: UInt8.self) + 4, Int(slot.pointee.key_bytes))
            }
            image.mac = mac
        }

        try writeHeader(&image, sequence: sequence, threadCount: 1 + followers)
        // Incremental: the parent must still be the image the write protection started from.
        let tracker = DirtyPageTracker(config: capture.pointee.config, pid: pid)
        var parentChain: UInt32? = nil
        if incremental, let tracker, let chain = tracker.usableBase(directory: directory,
                                                                    maxChain: capture.pointee.config.pointee.max_chain) {
            parentChain = chain
            chainLength = chain + 1
            try writeParent(&image, tracker: tracker)
        }
        try ProcessDumper.dump(arena: &arena, into: &image)
        var agent = stasis_agent_record_t()
        agent.restore_tail = capture.pointee.restore_tail
        agent.restore_thread_tail = capture.pointee.restore_thread_tail
        agent.key_slot = capture.pointee.config.pointee.key_slot
        agent.state_address = UInt64(UInt(bitPattern: state))
        agent.trigger_signal = capture.pointee.config.pointee.trigger_signal
        try image.writeRecord(kind: UInt32(STASIS_RECORD_AGENT), fixed: &agent, fixedBytes: MemoryLayout<stasis_agent_record_t>.size)
        try SignalActionsDumper.dump(into: &image)
        try TimerDumper.dump(arena: &arena, into: &image)
        try ThreadDumper.dump(capture, into: &image)
        for i in 0..<followers { try ThreadDumper.dump(follower: freeze.slots + i, into: &image) }
        try PendingSignalDumper.dump(into: &image)
        guard var files = FileDescriptorDumper.make(arena: &arena) else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace)
        }
        files.skipUnsupported = skipUnsupported
        try files.dump(excluding: imageFD, and: tracker?.descriptor() ?? -1, into: &image)

        // The memory map, read while every thread is frozen: the in-place writer and the copy-on-write
        // writer both dump exactly these areas.
        let mapsCapacity = 32 << 20
        guard let maps = arena.take(mapsCapacity), var memory = MemoryDumper.make(arena: &arena, config: capture.pointee.config)
        else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
        var mapsCount = ProcFile.read(literal: "/proc/self/maps", into: maps, capacity: mapsCapacity)
        if mapsCount < 0 { throw FreezeFailure(step: .readProc, errno: -mapsCount) }
        if parentChain != nil { try memory.classify(maps: maps.assumingMemoryBound(to: UInt8.self), count: mapsCount, arena: &arena) }
        // Tracking continues for a process that had it, and starts with its first --incremental image.
        var armTracking = tracker != nil && (incremental || tracker?.descriptor() != nil)
        if armTracking && tracker?.prepare() == nil {
            armTracking = false
            trackingUnavailable = true  // reported: `stasis checkpoint` warns
        }

        // Copy-on-write: a grandchild gets this address space as it is now and writes it; the program
        // goes on at once. Raw clone (no atfork handlers, no exit signal); the child only clones the
        // writer and exits, and is reaped here at once, so the program never has a child it did not
        // make: the writer is an orphan that init reaps. Areas marked MADV_DONTFORK (Node's V8 heap,
        // RDMA buffers) are not in a child at all: the first child finds its map differs and says so;
        // the second attempt clears the mark for the clone and puts it back. Else: write in place.
        var dontFork: UnsafeMutablePointer<UInt64>? = nil
        var dontForkCount = 0
        var attempt = 0
        while forkWriter && attempt < 2 {
            attempt += 1
            if attempt == 2 {
                guard let (ranges, count) = DontForkAreas.find(arena: &arena), count > 0 else { break }
                dontFork = ranges
                dontForkCount = count
                DontForkAreas.mark(ranges, count, advice: DontForkAreas.doFork)
                // Clearing the mark may merge areas: the child must compare with the map as it is now.
                mapsCount = ProcFile.read(literal: "/proc/self/maps", into: maps, capacity: mapsCapacity)
                if mapsCount < 0 {
                    DontForkAreas.mark(ranges, count, advice: DontForkAreas.dontFork)
                    throw FreezeFailure(step: .readProc, errno: -mapsCount)
                }
            }
            let child = RawSyscall.call(56 /* clone */, 0, 0, 0, 0, 0)
            if let ranges = dontFork, child != 0 { DontForkAreas.mark(ranges, dontForkCount, advice: DontForkAreas.dontFork) }
            if child == 0 {
                if !childSeesSameMaps(maps, mapsCount, arena: &arena) { _ = RawSyscall.call(STASIS_NR_exit_group, Self.mapsDifferInChild) }
                let writer = RawSyscall.call(56 /* clone */, 0, 0, 0, 0, 0)
                if writer != 0 { _ = RawSyscall.call(STASIS_NR_exit_group, writer > 0 ? 0 : 1) }
                isWriterChild = true
                thawedAt = monotonicNanoseconds()
                break
            }
            guard child > 0 else { break }  // clone failed: write in place
            capture.pointee.state.pointee.writer_pid = Int32(truncatingIfNeeded: child)
            // The intermediate child: it exits right after its clone.
            if reapPreviousWriter() == Int32(Self.mapsDifferInChild) { continue }
            RawSyscall.close(imageFD)
            imageFD = -1
            tempPath.removeAll()  // the child's now: a failure here must not unlink it
            if armTracking, let tracker { armDirtyTracking(tracker, memory: memory, maps: maps, count: mapsCount, sequence: sequence) }
            thawedAt = monotonicNanoseconds()
            freeze.thaw()
            thawed = true
            delegated = true
            return
        }

        try memory.dump(maps: maps.assumingMemoryBound(to: UInt8.self), count: mapsCount, into: &image)

        try image.writeEnd()
        if !isWriterChild, armTracking, let tracker {
            armDirtyTracking(tracker, memory: memory, maps: maps, count: mapsCount, sequence: sequence)
        }
        if !isWriterChild {
            // Memory is in the file: the program may run again while the image reaches the disk.
            // The pause ends here; read the clock first: once woken, busy threads may keep us off the CPU.
            thawedAt = monotonicNanoseconds()
            freeze.thaw()
        }
        thawed = true

        let synced = RawSyscall.call(STASIS_NR_fsync, Int(imageFD))
        if synced < 0 { throw FreezeFailure(step: .syncImage, errno: -synced) }

        // Publish without replacing any image (EEXIST only if another writer took the name meanwhile).
        let renamed = RawSyscall.call(STASIS_NR_renameat2, -100, Int(bitPattern: tempPath.cString), -100,
                                      Int(bitPattern: finalPath.cString), 1 /* RENAME_NOREPLACE */)
        if renamed != 0 { throw FreezeFailure(step: .renameImage, errno: -renamed) }
        tempPath.removeAll()
        // Unlocked explicitly: a child the program forked meanwhile shares the description.
        var unlock = FileLock(type: FileLock.unlocked)
        _ = withUnsafeMutablePointer(to: &unlock) {
            RawSyscall.call(STASIS_NR_fcntl, Int(imageFD), FileLock.setOpenFileLock, Int(bitPattern: $0))
        }
        RawSyscall.close(imageFD)
        imageFD = -1
        let dirFD = RawSyscall.open(directory.cString, RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if dirFD >= 0 {
            _ = RawSyscall.call(STASIS_NR_fsync, dirFD)
            RawSyscall.close(Int32(dirFD))
        }
        updateLatestLink()
        removeOldImages(newest: sequence)
        publishedAt = monotonicNanoseconds()
    }

    /// DIR/.NAME-PID.tmp, created (0600, O_EXCL) and write-locked with an open file description
    /// lock. The lock lives as long as the description: a copy-on-write writer holds it until it has
    /// published (or died), so a checkpoint that finds the name locked knows the previous image of
    /// this process is still being written (.checkpointInProgress, "busy" for `stasis checkpoint`),
    /// and one that finds it unlocked removes what a killed checkpoint left.
    @_noAllocation @_noLocks
    private mutating func createTemporaryFile() throws(FreezeFailure) {
        tempPath.removeAll()
        appendHiddenName(&tempPath, suffix: ".tmp")
        var attempts = 0
        while true {
            attempts += 1
            let fd = RawSyscall.open(tempPath.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.exclusive
                | RawFlag.closeOnExec | RawFlag.noFollow, 0o600)
            if fd >= 0 {
                imageFD = Int32(fd)
                var lock = FileLock(type: FileLock.write)
                let locked = withUnsafeMutablePointer(to: &lock) {
                    RawSyscall.call(STASIS_NR_fcntl, fd, FileLock.setOpenFileLock, Int(bitPattern: $0))
                }
                if locked != 0 { throw FreezeFailure(step: .openImage, errno: -locked) }
                return
            }
            guard fd == -RawErrno.exists, attempts < 4 else {
                tempPath.removeAll()
                throw FreezeFailure(step: .openImage, errno: -fd)
            }
            let existing = RawSyscall.open(tempPath.cString, RawFlag.readOnly | RawFlag.closeOnExec | RawFlag.noFollow)
            if existing < 0 { continue }  // published or removed meanwhile: try again
            var probe = FileLock(type: FileLock.write)
            let asked = withUnsafeMutablePointer(to: &probe) {
                RawSyscall.call(STASIS_NR_fcntl, existing, FileLock.getOpenFileLock, Int(bitPattern: $0))
            }
            RawSyscall.close(Int32(existing))
            if asked == 0 && probe.type != FileLock.unlocked {
                tempPath.removeAll()  // not ours: never unlink it
                throw FreezeFailure(step: .checkpointInProgress, errno: 0)
            }
            _ = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: tempPath.cString))  // left by a killed checkpoint
        }
    }

    /// The PARENT record: the tracker's base image, by name, sequence and time.
    @_noAllocation @_noLocks
    private func writeParent(_ image: inout ImageFile, tracker: DirtyPageTracker) throws(FreezeFailure) {
        let (name, nameCount) = tracker.baseName()
        var parent = stasis_parent_record_t()
        parent.sequence = tracker.state.pointee.base_sequence
        parent.time_ns = tracker.state.pointee.base_time_ns
        parent.pid = Int32(truncatingIfNeeded: pid)
        parent.chain_length = chainLength
        parent.name_bytes = UInt32(nameCount)
        try image.writeRecord(kind: UInt32(STASIS_RECORD_PARENT), fixed: &parent,
                              fixedBytes: MemoryLayout<stasis_parent_record_t>.size, tail: UnsafeRawPointer(name), tailBytes: nameCount)
    }

    /// Write-protects memory as captured now: this image becomes the next incremental one's parent.
    @_noAllocation @_noLocks
    private func armDirtyTracking(_ tracker: DirtyPageTracker, memory: MemoryDumper, maps: UnsafeMutableRawPointer,
                                  count: Int, sequence: UInt64)
    {
        let pagemap = RawSyscall.open(literal: "/proc/self/pagemap", RawFlag.readOnly | RawFlag.closeOnExec)
        guard pagemap >= 0 else {
            tracker.forget()
            return
        }
        defer { RawSyscall.close(Int32(pagemap)) }
        _ = tracker.arm(maps: maps.assumingMemoryBound(to: UInt8.self), count: count, pagemapFD: Int32(pagemap),
                        scratchRanges: memory.scratchRanges, regions: memory.regions,
                        path: finalPath, sequence: sequence,
                        timeNanoseconds: imageTimeNanoseconds, chainLength: chainLength)
    }

    /// The sequence of the oldest image `sequence`'s chain needs (itself for a full image), following
    /// PARENT records; 0 when an image in the chain cannot be read.
    @_noAllocation @_noLocks
    private mutating func chainStart(of sequence: UInt64) -> UInt64 {
        var current = sequence
        for _ in 0..<100_000 {
            scratch.removeAll()
            appendImageName(&scratch, sequence: current)
            var link = ImageLink()
            switch link.read(scratch.cString) {
            case 0: return current  // already gone: nothing older to keep for it
            case 1: break
            default: return 0
            }
            guard link.hasParent else { return current }
            guard link.parent.sequence < current else { return 0 }
            current = link.parent.sequence
        }
        return 0
    }

    /// --keep N: once the new image is safe, remove this process's images numbered N or more below it.
    /// Only names this agent writes (COMM-PID-SEQ.stasis) are touched.
    @_noAllocation @_noLocks
    private mutating func removeOldImages(newest: UInt64) {
        let keep = UInt64(capture.pointee.config.pointee.keep)
        guard keep > 0, newest > keep else { return }
        // Incremental images need their parents: keep every image a kept one's chain goes back to.
        var oldestNeeded = newest - keep + 1
        for kept in (newest - keep + 1)...newest {
            let start = chainStart(of: kept)
            if start == 0 { return }  // unreadable: delete nothing rather than break a chain
            oldestNeeded = min(oldestNeeded, start)
        }
        guard oldestNeeded > 1 else { return }
        var old = oldestNeeded - 1
        var misses = 0
        while old > 0 && misses < 64 {  // earlier numbers may be gone already; stop after a run of gaps
            scratch.removeAll()
            appendImageName(&scratch, sequence: old)
            if RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: scratch.cString)) == 0 { misses = 0 } else { misses += 1 }
            old -= 1
        }
        scratch.removeAll()
    }

    /// DIR/COMM-PID.latest -> COMM-PID-SEQ.stasis (best effort: the image is already safe).
    @_noAllocation @_noLocks
    private mutating func updateLatestLink() {
        var slash = finalPath.count - 1
        while slash > 0 && finalPath.bytes[slash] != UInt8(ascii: "/") { slash -= 1 }
        scratch.removeAll()
        appendHiddenName(&scratch, suffix: ".latest.tmp")
        _ = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: scratch.cString))
        let target = UnsafeRawPointer(finalPath.bytes + slash + 1)
        guard RawSyscall.call(STASIS_NR_symlink, Int(bitPattern: target), Int(bitPattern: scratch.cString)) == 0
        else { return }
        message.removeAll()
        message.append(bytes: directory.bytes, count: directory.count)
        message.append("/")
        appendProgramName(&message)
        message.append("-")
        message.append(decimal: pid)
        message.append(".latest")
        _ = RawSyscall.call(STASIS_NR_rename, Int(bitPattern: scratch.cString), Int(bitPattern: message.cString))
        message.removeAll()
    }

    @_noAllocation @_noLocks
    private mutating func writeHeader(_ image: inout ImageFile, sequence: UInt64, threadCount: Int) throws(FreezeFailure) {
        var header = stasis_image_header_t()
        header.magic = (0x53, 0x54, 0x41, 0x53, 0x49, 0x53, 0x00, 0x01)  // STASIS_IMAGE_MAGIC
        header.version = UInt32(STASIS_IMAGE_VERSION)
        header.header_bytes = UInt32(MemoryLayout<stasis_image_header_t>.size)
        header.arch = UInt32(STASIS_ARCH_X86_64)
        header.page_size = UInt32(STASIS_PAGE_SIZE)
        header.xcr0 = _unsafePerformance { stasis_xgetbv0() }
        header.xsave_size = capture.pointee.thread.xsave_bytes
        header.thread_count = UInt32(threadCount)
        header.pid = Int32(truncatingIfNeeded: pid)
        header.uid = UInt32(truncatingIfNeeded: uid)
        header.sequence = sequence
        var now: (Int64, Int64) = (0, 0)
        withUnsafeMutablePointer(to: &now) { pointer in
            _ = RawSyscall.call(STASIS_NR_clock_gettime, 0 /* CLOCK_REALTIME */, Int(bitPattern: pointer))
        }
        header.time_ns = UInt64(bitPattern: now.0 &* 1_000_000_000 &+ now.1)
        imageTimeNanoseconds = header.time_ns
        // uname(2): six 65-byte fields; release is the third.
        scratch.removeAll()
        _ = RawSyscall.call(STASIS_NR_uname, Int(bitPattern: scratch.bytes))
        withUnsafeMutableBytes(of: &header.kernel_release) { bytes in
            for i in 0..<64 {
                let c = scratch.bytes[130 + i]
                if c == 0 { break }
                bytes[i] = c
            }
        }
        scratch.removeAll()
        let exeCount = RawSyscall.readlink(literal: "/proc/self/exe", scratch.bytes, scratch.capacity - 1)
        let programBytes = max(exeCount, 0)
        header.program_bytes = UInt32(programBytes)
        var crc = _unsafePerformance { stasis_crc32c_update(stasis_crc32c_begin(), &header, UInt(MemoryLayout<stasis_image_header_t>.size)) }
        crc = _unsafePerformance { stasis_crc32c_end(stasis_crc32c_update(crc, scratch.bytes, UInt(programBytes))) }
        // Written with header_crc = 0 (what the signature covers), then the CRC goes in with pwrite.
        try image.writeRaw(&header, MemoryLayout<stasis_image_header_t>.size)
        try image.writeRaw(scratch.bytes, programBytes)
        try image.pad(to: 8)
        var headerCRC = crc
        try image.patch(&headerCRC, 4, at: UInt64(STASIS_HEADER_CRC_OFFSET))
        scratch.removeAll()
    }

    /// Tells whoever asked: `stasis checkpoint` through its result file, a plain `kill` through fd 2 on failure.
    @_noAllocation @_noLocks
    mutating func report(_ failure: FreezeFailure?) {
        message.removeAll()
        if let failure, failure.step == .checkpointInProgress, capture.pointee.request_id != 0 {
            message.append("busy")  // `stasis checkpoint` asks again once that image is out
        } else if let failure {
            var text = message  // shares the bytes; a copy so describe() can read self
            let prefix: StaticString = capture.pointee.request_id != 0 ? "error "
                : failure.step == .checkpointInProgress ? "stasis: checkpoint skipped: " : "stasis: checkpoint failed: "
            text.append(prefix)
            describe(failure, into: &text)
            message = text
        } else {
            message.append("ok ")
            message.append(bytes: finalPath.bytes, count: finalPath.count)
            // Timings for `stasis checkpoint --json` and the benchmarks, one per line after the path.
            message.append("\nthreads ")
            message.append(decimal: threadCount)
            message.append("\nfreeze_ns ")
            message.append(decimal: Int(frozenAt - startedAt))
            message.append("\npause_ns ")
            message.append(decimal: Int(thawedAt - startedAt))
            message.append("\ntotal_ns ")
            message.append(decimal: Int(publishedAt - startedAt))
            message.append("\nchain_length ")
            message.append(decimal: Int(chainLength))
            message.append("\nmax_chain ")
            message.append(decimal: Int(capture.pointee.config.pointee.max_chain))
            if trackingUnavailable { message.append("\nincremental_unavailable 1") }
        }
        message.append("\n")
        let requestID = capture.pointee.request_id
        if requestID == 0 {
            if failure != nil { _ = RawSyscall.write(2, message.bytes, message.count) }
            return
        }
        scratch.removeAll()
        appendControlPath(&scratch)
        scratch.append("/result.tmp")
        let fd = RawSyscall.open(scratch.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.truncate
            | RawFlag.closeOnExec | RawFlag.noFollow, 0o600)
        guard fd >= 0 else { return }
        _ = RawSyscall.write(Int32(fd), message.bytes, message.count)
        RawSyscall.close(Int32(fd))
        tempPath.removeAll()
        tempPath.append(bytes: scratch.bytes, count: scratch.count - 4)  // drop ".tmp"
        _ = RawSyscall.call(STASIS_NR_rename, Int(bitPattern: scratch.cString), Int(bitPattern: tempPath.cString))
    }

    @_noAllocation @_noLocks
    private func describe(_ failure: FreezeFailure, into text: inout TextBuffer) {
        switch failure.step {
        case .openImage: text.append("cannot create the image in ")
        case .writeImage: text.append("cannot write the image in ")
        case .syncImage: text.append("cannot sync the image in ")
        case .renameImage: text.append("cannot publish the image in ")
        case .readProc: text.append("cannot read /proc/self")
        case .scanPages: text.append("PAGEMAP_SCAN failed (Linux 6.7 or newer is needed) at 0x")
        case .unsupportedFile: text.append("fd ")
        case .arenaExhausted: text.append("agent scratch memory exhausted")
        case .readRequest: text.append("cannot read the checkpoint request")
        case .tooManyRuns: text.append("too many page runs in one memory area")
        case .threadsDidNotStop:
            text.append(decimal: failure.object)
            text.append(" thread(s) did not stop within 5 s (blocking the checkpoint signal with raw system calls?)")
            return
        case .tooManyThreads: text.append("more threads than the agent can capture (4096)")
        case .checkpointInProgress:
            text.append("the previous image of this process is still being written")
            return
        case .stillPagingIn:
            text.append("the lazy restart's pager (pid ")
            text.append(decimal: failure.object)
            text.append(") is still bringing pages in after 120 s; try again later")
            return
        case .sysvSharedMemory:
            text.append("SysV shared memory (shmat) at 0x")
            text.append(hex: UInt64(UInt(bitPattern: failure.object)))
            text.append(" is not supported yet")
            return
        case .readDeletedFile:
            text.append("cannot read the contents of the deleted file at fd ")
            text.append(decimal: failure.object)
        case .deletedFileTooLarge:
            text.append("the deleted file or memfd at fd ")
            text.append(decimal: failure.object)
            text.append(" is larger than 4 GiB; Stasis saves such contents only up to that size")
            return
        case .readPipe:
            text.append("cannot save the bytes buffered in the pipe at fd ")
            text.append(decimal: failure.object)
        case .signalThread:
            text.append("cannot signal thread ")
            text.append(decimal: failure.object)
        }
        switch failure.step {
        case .openImage, .writeImage, .syncImage, .renameImage:
            text.append(bytes: directory.bytes, count: directory.count)
        case .scanPages: text.append(hex: UInt64(UInt(bitPattern: failure.object)))
        case .unsupportedFile:
            text.append(decimal: failure.object)
            text.append(" (")
            var link = TextBuffer(scratch.bytes, capacity: 64)
            link.append("/proc/self/fd/")
            link.append(decimal: failure.object)
            let target = finalPath.bytes  // unused once a checkpoint has failed
            let n = RawSyscall.readlink(link.cString, target, min(finalPath.capacity - 1, 200))
            if n > 0 { text.append(bytes: target, count: n) }
            text.append(") is not supported yet: Stasis restores files, directories, /dev/null-like devices, pipes, eventfds, epoll and fds 0-2")
            return
        default: break
        }
        if failure.errno != 0 {
            text.append(": ")
            text.append(errnoText(failure.errno))
        }
    }
}

@_noAllocation @_noLocks
func errnoText(_ errno: Int) -> StaticString {
    switch errno {
    case 1: return "operation not permitted"
    case 2: return "no such file or directory"
    case 5: return "input/output error"
    case 12: return "out of memory"
    case 13: return "permission denied"
    case 17: return "file exists"
    case 20: return "not a directory"
    case 22: return "invalid argument"
    case 25: return "inappropriate ioctl (PAGEMAP_SCAN missing)"
    case 27: return "file too large"
    case 28: return "no space left on device"
    case 30: return "read-only file system"
    case 36: return "file name too long"
    case 95: return "not supported"
    case 122: return "disk quota exceeded"
    default: return "system error"
    }
}

@_noAllocation @_noLocks
func monotonicNanoseconds() -> Int64 {
    var now: (Int64, Int64) = (0, 0)
    withUnsafeMutablePointer(to: &now) { pointer in
        _ = RawSyscall.call(STASIS_NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, Int(bitPattern: pointer))
    }
    return now.0 &* 1_000_000_000 &+ now.1
}
