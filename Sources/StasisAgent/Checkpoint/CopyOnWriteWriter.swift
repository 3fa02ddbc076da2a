// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// The copy-on-write writer: three processes, each knowing which it is by a CheckpointRole.
//
//   program (frozen) --clone--> intermediate --clone--> writer (orphan)
//        |                          |                      writes memory, fsyncs, publishes,
//        |  reaps it at once        exit_group(0)          reports, exit_group
//        `-- thaws: the program runs on (role .delegated: the writer reports)
import CStasisABI
import CStasisShim
import StasisProc

/// Which process a checkpoint runs in, once the memory is about to be written.
enum CheckpointRole {
    /// The program itself writes its memory (--no-fork, --checkpoint-on, or no clone possible).
    case inPlace
    /// The program, after handing the rest to a writer: it thaws and returns; the writer reports.
    case delegated
    /// The copy-on-write writer: it writes, publishes, reports and exits, never returning into the program.
    case writer
}

extension CheckpointJob {
    /// The writer: shared memory is copied, the program may thaw (the byte unblocks it; so would exit).
    @_noAllocation @_noLocks
    mutating func releaseProgram() {
        guard snapshotFD >= 0 else { return }
        var done: UInt8 = 1
        _ = RawSyscall.write(snapshotFD, &done, 1)
        RawSyscall.close(snapshotFD)
        snapshotFD = -1
    }

    /// --fork: reaps the intermediate child (waitid on the pid in state.writer_pid).
    /// Returns the child's exit status (-1 if there was none to reap).
    @_noAllocation @_noLocks @discardableResult
    func reapPreviousWriter() -> Int32 {
        let state = capture.pointee.state
        let writer = state.pointee.writer_pid
        guard writer > 0 else { return -1 }
        var info: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                   UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutablePointer(to: &info) { pointer in
            // waitid(P_PID, writer, WEXITED | __WALL): it was cloned without an exit signal.
            while RawSyscall.call(STASIS_NR_waitid, 1, Int(writer), Int(bitPattern: pointer), 4 | 0x4000_0000, 0)
                == -RawErrno.interrupted {}
        }
        state.pointee.writer_pid = 0
        // siginfo_t: si_code at byte 8 (CLD_EXITED = 1), si_status at byte 24.
        return UInt32(truncatingIfNeeded: info.1) == 1 ? Int32(truncatingIfNeeded: info.3) : -1
    }

    /// Exit status of the intermediate child when its memory map is not the program's.
    static let mapsDifferInChild = 3

    /// The size of this address space in pages (`/proc/self/statm`, first field: the kernel's `total_vm`),
    /// or -1. O(1), unlike /proc/self/maps.
    @_noAllocation @_noLocks
    static func addressSpacePages(_ buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let count = ProcFile.read(literal: "/proc/self/statm", into: buffer, capacity: capacity)
        guard count > 0 else { return -1 }
        let bytes = buffer.assumingMemoryBound(to: UInt8.self)
        var pages = 0
        var i = 0
        while i < count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            pages = pages &* 10 &+ Int(bytes[i] &- UInt8(ascii: "0"))
            i += 1
        }
        return i > 0 ? pages : -1
    }

    /// In the intermediate child: does it have every area the program had before the clone?
    /// fork copies every area one to one except MADV_DONTFORK ones, and the kernel takes exactly their
    /// pages off the child's `total_vm` (dup_mmap), so equal sizes mean equal maps. (Comparing the text
    /// of /proc/self/maps said the same at ~25 ms per read with 60,000 mappings, with the program frozen.)
    @_noAllocation @_noLocks
    func childSeesSameMaps(parentPages: Int, buffer: UnsafeMutableRawPointer, capacity: Int) -> Bool {
        parentPages >= 0 && Self.addressSpacePages(buffer, capacity: capacity) == parentPages
    }

    /// How the memory gets written, decided once every thread is frozen and the non-memory records
    /// are in the file. Copy-on-write: a grandchild gets this address space as it is now and writes
    /// it; the program goes on at once. Raw clone (no atfork handlers, no exit signal); the child only
    /// clones the writer and exits, and is reaped here at once, so the program never has a child it did
    /// not make: the writer is an orphan that init reaps. Areas marked MADV_DONTFORK (Node's V8 heap,
    /// RDMA buffers) are not in a child at all: the first child finds its map differs and says so; the
    /// second attempt clears the mark for the clone and puts it back. Else (or if clone fails): in place.
    /// The intermediate child never returns from here.
    @_noAllocation @_noLocks
    mutating func splitOffWriter(maps: UnsafeMutableRawPointer, mapsCount: inout Int, mapsCapacity: Int,
                                 arena: inout FreezeArena) throws(FreezeFailure) -> CheckpointRole {
        var dontFork: UnsafeMutablePointer<UInt64>? = nil
        var dontForkCount = 0
        var attempt = 0
        let statmCapacity = 256
        guard let statm = arena.take(statmCapacity) else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
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
            // The writer says through this pipe when it holds its own copy of the shared memory
            // (MemoryDumper.snapshotSharedAreas); the program stays frozen until then.
            // No mapping changes from here to the clone: the child compares its size with this.
            let parentPages = Self.addressSpacePages(statm, capacity: statmCapacity)
            var snapshot: (Int32, Int32) = (-1, -1)
            let piped = withUnsafeMutablePointer(to: &snapshot) { RawSyscall.call(STASIS_NR_pipe2, Int(bitPattern: $0), Int(RawFlag.closeOnExec)) }
            if piped != 0 { break }  // no pipe: write in place
            let child = RawSyscall.call(STASIS_NR_clone, 0, 0, 0, 0, 0)
            if let ranges = dontFork, child != 0 { DontForkAreas.mark(ranges, dontForkCount, advice: DontForkAreas.dontFork) }
            if child == 0 {
                RawSyscall.close(snapshot.0)
                snapshotFD = snapshot.1
                // The intermediate child: clone the writer, exit.
                if !childSeesSameMaps(parentPages: parentPages, buffer: statm, capacity: statmCapacity) { _ = RawSyscall.call(STASIS_NR_exit_group, Self.mapsDifferInChild) }
                let writer = RawSyscall.call(STASIS_NR_clone, 0, 0, 0, 0, 0)
                if writer != 0 {
                    // A tree's root watches each writer (one that dies never says so): its pid, before
                    // the program reaps this child and reports CAPTURED.
                    if writer > 0, let tree { tree.member(memberIndex).pointee.writer_pid = Int32(truncatingIfNeeded: writer) }
                    _ = RawSyscall.call(STASIS_NR_exit_group, writer > 0 ? 0 : 1)
                }
                thawedAt = monotonicNanoseconds()  // the program's pause ended at this clone
                return .writer
            }
            RawSyscall.close(snapshot.1)
            defer { RawSyscall.close(snapshot.0) }
            guard child > 0 else { break }  // clone failed: write in place
            capture.pointee.state.pointee.writer_pid = Int32(truncatingIfNeeded: child)
            if reapPreviousWriter() == Int32(Self.mapsDifferInChild) { continue }
            // One byte once the writer has its copy; end of file if it died first.
            var done: UInt8 = 0
            _ = RawSyscall.read(snapshot.0, &done, 1)
            RawSyscall.close(imageFD)
            imageFD = -1
            if lockFD >= 0 {  // a tree's root: the writer holds the lock now
                RawSyscall.close(lockFD)
                lockFD = -1
            }
            tempPath.removeAll()  // the writer's now: a failure here must not unlink it
            return .delegated
        }
        return .inPlace
    }
}
