// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// The control block of a tree checkpoint (stasis_tree.h): one memfd the root creates while frozen,
// mapped shared by every member and inherited by their copy-on-write writers. Phases go from the
// root to the members, progress from each member to the root, each through a shared futex.
import CStasisABI
import CStasisShim
import StasisProc

struct TreeControl {
    let block: UnsafeMutablePointer<stasis_tree_control_t>
    /// The root's memfd while members join (closed before the root thaws); -1 in members.
    var fd: Int32

    static var bytes: Int { Int(STASIS_TREE_CONTROL_BYTES) }

    /// The root: a fresh memfd, sized and mapped (tmpfs pages appear as they are touched).
    @_noAllocation @_noLocks
    static func create() throws(FreezeFailure) -> TreeControl {
        let fd = RawSyscall.call(STASIS_NR_memfd_create, Int(bitPattern: RawSyscall.cString("stasis-tree")),
                                 1 /* MFD_CLOEXEC */)
        if fd < 0 { throw FreezeFailure(step: .treeControl, errno: -fd) }
        let sized = RawSyscall.call(STASIS_NR_ftruncate, fd, bytes)
        guard sized == 0, let block = map(Int32(fd)) else {
            RawSyscall.close(Int32(fd))
            throw FreezeFailure(step: .treeControl, errno: sized < 0 ? -sized : RawErrno.noSpace)
        }
        block.pointee.magic = STASIS_TREE_CONTROL_MAGIC
        return TreeControl(block: block, fd: Int32(fd))
    }

    /// A member: the root's memfd through /proc/ROOT/fd/FD, if it is a live control block that lists us.
    @_noAllocation @_noLocks
    static func join(root: Int, fd: Int, path: inout TextBuffer) -> (TreeControl, index: Int)? {
        path.removeAll()
        path.append("/proc/")
        path.append(decimal: root)
        path.append("/fd/")
        path.append(decimal: fd)
        let opened = RawSyscall.open(path.cString, RawFlag.readWrite | RawFlag.closeOnExec)
        path.removeAll()
        guard opened >= 0 else { return nil }
        // The fd might since name another file of the root's: only the right size and magic will do.
        var status: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                     UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let statted = withUnsafeMutablePointer(to: &status) { RawSyscall.call(STASIS_NR_fstat, opened, Int(bitPattern: $0)) }
        let block = statted == 0 && Int(status.6) == bytes ? map(Int32(opened)) : nil  // st_size: byte 48
        RawSyscall.close(Int32(opened))
        guard let block else { return nil }
        let control = TreeControl(block: block, fd: -1)
        let me = Int32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getpid))
        if block.pointee.magic == STASIS_TREE_CONTROL_MAGIC, control.phase == Int32(STASIS_TREE_PHASE_FREEZE) {
            let count = min(Int(block.pointee.member_count), Int(STASIS_TREE_MAX_PROCESSES))
            for index in 1..<max(count, 1) where control.member(index).pointee.process.pid == me {
                return (control, index)
            }
        }
        control.unmap()
        return nil
    }

    @_noAllocation @_noLocks
    private static func map(_ fd: Int32) -> UnsafeMutablePointer<stasis_tree_control_t>? {
        let address = RawSyscall.call(STASIS_NR_mmap, 0, bytes, RawFlag.protRead | RawFlag.protWrite, 1 /* MAP_SHARED */, Int(fd), 0)
        guard address > 0 || address < -4096 else { return nil }
        return UnsafeMutablePointer(bitPattern: UInt(bitPattern: address))
    }

    /// Nothing of the tree stays in the program once it thaws.
    @_noAllocation @_noLocks
    func unmap() {
        if fd >= 0 { RawSyscall.close(fd) }
        _ = RawSyscall.call(STASIS_NR_munmap, Int(bitPattern: block), Self.bytes)
    }

    @_noAllocation @_noLocks
    mutating func closeDescriptor() {
        if fd >= 0 { RawSyscall.close(fd) }
        fd = -1
    }

    @_noAllocation @_noLocks
    func member(_ index: Int) -> UnsafeMutablePointer<stasis_tree_member_t> {
        _unsafePerformance { stasis_tree_member(block, UInt32(index)) }
    }

    @_noAllocation @_noLocks
    func descriptors(_ index: Int) -> UnsafeMutablePointer<stasis_tree_descriptor_t> {
        _unsafePerformance { stasis_tree_descriptors(block, UInt32(index)) }
    }

    var memberCount: Int { Int(block.pointee.member_count) }

    // MARK: phases (root to members) and progress (members to root)

    var phase: Int32 {
        @_noAllocation @_noLocks get { _unsafePerformance { stasis_atomic_load(&block.pointee.phase) } }
    }

    @_noAllocation @_noLocks
    func setPhase(_ phase: Int32) {
        _unsafePerformance {
            stasis_atomic_store(&block.pointee.phase, phase)
            _ = stasis_shared_futex_wake_all(&block.pointee.phase)
        }
    }

    @_noAllocation @_noLocks
    func progress(_ index: Int) -> Int32 {
        let member = member(index)
        return _unsafePerformance { stasis_atomic_load(&member.pointee.progress) }
    }

    @_noAllocation @_noLocks
    func setProgress(_ index: Int, _ value: Int32) {
        let member = member(index)
        _unsafePerformance {
            stasis_atomic_store(&member.pointee.progress, value)
            _ = stasis_atomic_add(&block.pointee.changes, 1)
            _ = stasis_shared_futex_wake_all(&block.pointee.changes)
        }
    }

    /// A member's failure, for the root to report.
    @_noAllocation @_noLocks
    func fail(_ index: Int, _ failure: FreezeFailure) {
        let member = member(index)
        member.pointee.fail_step = UInt32(failure.step.rawValue)
        member.pointee.fail_errno = Int32(truncatingIfNeeded: failure.errno)
        member.pointee.fail_object = Int64(failure.object)
        setProgress(index, Int32(STASIS_MEMBER_FAILED))
    }

    /// The root: waits until every member in `range` has reached `progress` (or failed, or is a
    /// zombie); returns the index of the first failed one, nil when all made it. Throws on timeout.
    @_noAllocation @_noLocks
    func waitForMembers(_ range: Range<Int>, toReach progress: Int32, timeoutNanoseconds: Int64,
                        livenessCheck: Bool,
                        stalled: (Int) throws(FreezeFailure) -> Void) throws(FreezeFailure) -> Int? {
        let deadline = monotonicNanoseconds() + timeoutNanoseconds
        while true {
            let seen = _unsafePerformance { stasis_atomic_load(&block.pointee.changes) }
            var waiting = -1
            for index in range {
                let now = self.progress(index)
                if now == Int32(STASIS_MEMBER_FAILED) { return index }
                if now < progress && member(index).pointee.process.state != STASIS_TREE_ZOMBIE {
                    if waiting < 0 { waiting = index }
                    // A writer that died (killed, out of memory) never says so: look for it.
                    // (Gone and still not WRITTEN, read again after: it may have finished just before exiting.)
                    if livenessCheck, now == Int32(STASIS_MEMBER_CAPTURED), member(index).pointee.writer_pid > 0,
                        RawSyscall.call(STASIS_NR_kill, Int(member(index).pointee.writer_pid), 0) == -3,
                        self.progress(index) == Int32(STASIS_MEMBER_CAPTURED)
                    {
                        fail(index, FreezeFailure(step: .treeWriterDied, errno: 0, object: Int(member(index).pointee.writer_pid)))
                        return index
                    }
                }
            }
            if waiting < 0 { return nil }
            if monotonicNanoseconds() > deadline {
                throw FreezeFailure(step: .treeProcessDidNotStop, errno: 0, object: Int(member(waiting).pointee.process.pid))
            }
            let woken = _unsafePerformance { stasis_shared_futex_wait(&block.pointee.changes, seen, 20_000_000) }
            if woken == -110 /* ETIMEDOUT */ {
                for index in range where self.progress(index) < progress { try stalled(index) }
            }
        }
    }

    /// A member: waits until the phase leaves `current`; gives up (as an abort) when the root is gone.
    @_noAllocation @_noLocks
    func waitForPhase(after current: Int32, root: Int) -> Int32 {
        while true {
            let now = phase
            if now != current { return now }
            _ = _unsafePerformance { stasis_shared_futex_wait(&block.pointee.phase, current, 100_000_000) }
            if phase == current, RawSyscall.call(STASIS_NR_kill, root, 0) == -3 { return Int32(STASIS_TREE_PHASE_ABORT) }
        }
    }
}
