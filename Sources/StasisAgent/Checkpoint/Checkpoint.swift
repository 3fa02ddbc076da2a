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
    let page = Int(STASIS_PAGE_SIZE)
    let slotBytes = (Int(config.pointee.slot_capacity) * MemoryLayout<stasis_thread_slot_t>.stride + page - 1) & ~(page - 1)
    guard let base = UnsafeMutableRawPointer(bitPattern: UInt(config.pointee.arena_start) + UInt(slotBytes)) else { return -22 }
    // ... and ends with the key slot (one page).
    // ... and ends with the tracking slot (two pages) and the key slot (one page).
    var arena = FreezeArena(base: base, capacity: Int(config.pointee.arena_bytes) - slotBytes - MemoryLayout<stasis_key_slot_t>.size - Int(STASIS_TRACKING_BYTES))
    guard var job = CheckpointJob(arena: &arena, capture: capture) else { return -12 }
    switch job.acceptRequest() {
    case .take: break
    case .repeated: return 0
    case .notOurs: return 1  // the program's own sigqueue, or a request given up: signal_entry.c decides
    }
    let result = job.run(arena: &arena)
    if job.isTreeMember {
        if let result { job.reportToTree(result) }  // the root reports for the whole tree
        if job.role != .writer { job.leaveTree() }
    } else {
        if job.role != .delegated { job.report(result) }
        if job.role != .writer { job.leaveTree() }
    }
    if job.role == .writer {
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
    /// A tree's root: the images' directory while `directory` is the tree's temporary one.
    var treeParent: TextBuffer
    let zeros: UnsafeMutableRawPointer
    /// Room for CONTROL/request or CONTROL/result (stasis_request.h).
    let protocolBuffer: UnsafeMutableRawPointer
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
    /// Which process this is once memory is about to be written (CopyOnWriteWriter.swift).
    var role = CheckpointRole.inPlace
    /// --incremental: store only pages written since the previous image (Dump/DirtyPages.swift).
    var incremental = false
    /// --compress: page data of private areas in compressed blocks (image format 4).
    var compress = false
    /// Images in this image's chain: 1 for a full image.
    var chainLength: UInt32 = 1
    /// --incremental was asked for but no userfaultfd could be had.
    var trackingUnavailable = false
    /// This image's header.time_ns (a later incremental image names it as its parent by it).
    var imageTimeNanoseconds: UInt64 = 0
    /// This image's header_crc (a tree's manifest binds each member image by it).
    var imageHeaderCRC: UInt32 = 0
    /// A tree checkpoint (Checkpoint/Tree): the shared control block, and this process's place in it
    /// (0: the root, which coordinates).
    var tree: TreeControl? = nil
    var memberIndex = 0
    /// The root of a tree keeps DIR/.NAME-PID.tmp open and locked here while its member image is imageFD.
    var lockFD: Int32 = -1
    /// The copy-on-write writer's end of the pipe the frozen program waits on (CopyOnWriteWriter.swift).
    var snapshotFD: Int32 = -1

    @_noAllocation @_noLocks
    init?(arena: inout FreezeArena, capture: UnsafeMutablePointer<stasis_capture_t>) {
        let pathCapacity = Int(STASIS_MAX_PATH) + 256
        guard let d = arena.take(pathCapacity), let f = arena.take(pathCapacity), let t = arena.take(pathCapacity),
            let s = arena.take(pathCapacity), let m = arena.take(pathCapacity), let tp = arena.take(pathCapacity),
            let z = arena.take(Int(STASIS_PAGE_SIZE), alignment: Int(STASIS_PAGE_SIZE)),
            let p = arena.take(max(MemoryLayout<stasis_checkpoint_request_t>.size, MemoryLayout<stasis_checkpoint_result_t>.size) + 16)
        else { return nil }
        protocolBuffer = p
        self.capture = capture
        directory = TextBuffer(d, capacity: pathCapacity)
        finalPath = TextBuffer(f, capacity: pathCapacity)
        tempPath = TextBuffer(t, capacity: pathCapacity)
        scratch = TextBuffer(s, capacity: pathCapacity)
        message = TextBuffer(m, capacity: pathCapacity)
        treeParent = TextBuffer(tp, capacity: pathCapacity)
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
        compress = capture.pointee.config.pointee.compress != 0
    }

    /// Writes the image; nil on success.
    @_noAllocation @_noLocks
    mutating func run(arena: inout FreezeArena) -> FreezeFailure? {
        do throws(FreezeFailure) {
            if isTreeMember { chooseTreeMemberDirectory() } else { try chooseDirectory() }
            try writeImage(arena: &arena)
            return nil
        } catch {
            if isTreeRoot { abortTree() }
            if imageFD >= 0 {
                RawSyscall.close(imageFD)
                imageFD = -1
            }
            if tempPath.count > 0 { _ = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: tempPath.cString)) }
            return error
        }
    }

    /// The whole checkpoint after the request is taken, as a list of steps.
    @_noAllocation @_noLocks
    mutating func writeImage(arena: inout FreezeArena) throws(FreezeFailure) {
        if !isTreeMember { try createTemporaryFile() }  // "busy" while the previous image is still being written
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
        // A tree (Checkpoint/Tree): a member joins its root; a process with children becomes the root
        // of its own and freezes every descendant before anything is written.
        let sequence: UInt64
        if isTreeMember {
            sequence = try joinFrozenTree()
        } else if try firstChild(arena: &arena) != nil {
            sequence = try freezeTree(arena: &arena)
            frozenAt = monotonicNanoseconds()  // the whole tree stands still from here
        } else {
            sequence = claimSequence()
        }

        // Everything but memory.
        var image = openImage(arena: &arena)
        try writeHeader(&image, sequence: sequence, threadCount: threadCount)
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
        try writeAgentRecord(&image)
        try SignalActionsDumper.dump(into: &image)
        try TimerDumper.dump(arena: &arena, into: &image)
        try ThreadDumper.dump(capture, into: &image)
        for i in 0..<followers { try ThreadDumper.dump(follower: freeze.slots + i, into: &image) }
        try PendingSignalDumper.dump(into: &image)
        guard var files = FileDescriptorDumper.make(arena: &arena) else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace)
        }
        files.skipUnsupported = skipUnsupported
        files.tree = tree
        try files.dump(excluding: imageFD, and: tracker?.descriptor() ?? -1, lock: lockFD, arena: &arena, into: &image)
        try writeSharedDescriptions(&image, arena: &arena)

        // The memory map, read while every thread is frozen: the in-place writer and the copy-on-write
        // writer both dump exactly these areas.
        let mapsCapacity = 32 << 20
        guard let maps = arena.take(mapsCapacity), var memory = MemoryDumper.make(arena: &arena, config: capture.pointee.config)
        else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
        var mapsCount = ProcFile.read(literal: "/proc/self/maps", into: maps, capacity: mapsCapacity)
        if mapsCount < 0 { throw FreezeFailure(step: .readProc, errno: -mapsCount) }
        if compress {
            guard let writer = PageBlockWriter.make(arena: &arena) else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
            memory.blockWriter = writer
        }
        if let tree {
            let start = UInt64(UInt(bitPattern: tree.block))
            memory.excluded = (start, start + UInt64(TreeControl.bytes))
        }
        if parentChain != nil { try memory.classify(maps: maps.assumingMemoryBound(to: UInt8.self), count: mapsCount, arena: &arena) }
        // Tracking continues for a process that had it, and starts with its first --incremental image.
        var armTracking = tracker != nil && (incremental || tracker?.descriptor() != nil)
        if armTracking && tracker?.prepare() == nil {
            armTracking = false
            trackingUnavailable = true  // reported: `stasis checkpoint` warns
        }

        try image.flush()  // the records so far are in the file before any clone
        role = try splitOffWriter(maps: maps, mapsCount: &mapsCount, mapsCapacity: mapsCapacity, arena: &arena)
        if role == .delegated {
            try treeCaptured()
            if armTracking, let tracker { armDirtyTracking(tracker, memory: memory, maps: maps, count: mapsCount, sequence: sequence) }
            thawedAt = monotonicNanoseconds()
            freeze.thaw()
            thawed = true
            return
        }
        if role == .writer {
            defer { releaseProgram() }
            try memory.snapshotSharedAreas(maps: maps.assumingMemoryBound(to: UInt8.self), count: mapsCount, arena: &arena)
        }
        if role == .writer {  // the program runs again: the writer may take a second core and wait for the disk
            image.progressiveWriteBack = true
            image.startCRCHelper(arena: &arena)
        }
        // A tree's writer starts once every member has captured: an early one would take the CPU
        // from members still capturing, and everyone's pause would wait for the slowest.
        if role == .writer, let tree { try waitForTreeThaw(tree) }
        if role == .writer { memory.blockWriter?.startWorkers() }  // compression on every CPU; in place, the program's threads only
        defer { memory.blockWriter?.stopWorkers() }
        try memory.dump(maps: maps.assumingMemoryBound(to: UInt8.self), count: mapsCount, into: &image)
        try image.writeEnd()
        if role == .inPlace {
            try treeCaptured(writer: pid)
            if armTracking, let tracker { armDirtyTracking(tracker, memory: memory, maps: maps, count: mapsCount, sequence: sequence) }
            // Memory is in the file: the program may run again while the image reaches the disk.
            // The pause ends here; read the clock first: once woken, busy threads may keep us off the CPU.
            thawedAt = monotonicNanoseconds()
            freeze.thaw()
        }
        thawed = true  // (the writer's copy of the program has nothing to thaw)
        if isTreeMember {
            try finishMemberImage()
        } else if isTreeRoot {
            try publishTree(sequence: sequence, arena: &arena)
        } else {
            try publish(sequence: sequence)
        }
    }
}
