// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// A member of a tree checkpoint (stasis_tree.h): it joins the root's control block, freezes its own
// threads, waits for CAPTURE, writes its image into the tree's directory like any process, and
// thaws only when the root says every member has captured what it must.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    var isTreeMember: Bool { tree != nil && memberIndex > 0 }
    var isTreeRoot: Bool { tree != nil && memberIndex == 0 }

    /// A tree freeze request: sigqueue value STASIS_TREE_MAGIC << 32 | the root's memfd, from the
    /// root. A stale or foreign one is dropped (`.repeated`): it is never the program's own signal.
    @_noAllocation @_noLocks
    mutating func acceptTreeRequest() -> RequestVerdict {
        let value = UInt64(bitPattern: capture.pointee.request_id)
        guard let (control, index) = TreeControl.join(root: Int(capture.pointee.sender_pid),
                                                      fd: Int(value & 0xffff_ffff), path: &scratch)
        else { return .repeated }
        tree = control
        memberIndex = index
        return .take
    }

    /// A member's directory and options are the root's.
    @_noAllocation @_noLocks
    mutating func chooseTreeMemberDirectory() {
        guard let tree else { return }
        let field = _unsafePerformance { stasis_tree_directory(tree.block) }
        field[Int(STASIS_MAX_PATH) - 1] = 0
        directory.append(cStringAt: UnsafeRawPointer(field))
        let flags = tree.block.pointee.flags
        skipUnsupported = flags & STASIS_REQUEST_SKIP_UNSUPPORTED != 0
        forkWriter = forkWriter && flags & STASIS_REQUEST_NO_FORK == 0
        incremental = false  // a tree's members are full images (Docs/ARCHITECTURE.md 2.7)
        compress = flags & STASIS_REQUEST_COMPRESS != 0
        let key = _unsafePerformance { stasis_tree_key_file(tree.block) }
        key[Int(STASIS_MAX_PATH) - 1] = 0
        loadKey(UnsafePointer(key))
    }

    /// With every thread of this member frozen: says so (with its descriptors), waits for the root's
    /// CAPTURE and opens its image. Returns the tree's sequence.
    @_noAllocation @_noLocks
    mutating func joinFrozenTree() throws(FreezeFailure) -> UInt64 {
        guard let tree else { throw FreezeFailure(step: .treeAborted, errno: 0) }
        fillOwnProcessFields(tree.member(memberIndex))
        try listOwnDescriptors(memberIndex)
        tree.setProgress(memberIndex, Int32(STASIS_MEMBER_FROZEN))
        let phase = tree.waitForPhase(after: Int32(STASIS_TREE_PHASE_FREEZE), root: Int(capture.pointee.sender_pid))
        guard phase == Int32(STASIS_TREE_PHASE_CAPTURE) else { throw FreezeFailure(step: .treeAborted, errno: 0) }
        try openMemberImage()
        return tree.block.pointee.sequence
    }

    /// DIRECTORY/PID.stasis, where DIRECTORY is the tree's temporary directory (O_EXCL, 0600).
    @_noAllocation @_noLocks
    mutating func openMemberImage() throws(FreezeFailure) {
        tempPath.removeAll()
        tempPath.append(bytes: directory.bytes, count: directory.count)
        tempPath.append("/")
        tempPath.append(decimal: pid)
        tempPath.append(".stasis")
        let fd = RawSyscall.open(tempPath.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.exclusive
            | RawFlag.closeOnExec | RawFlag.noFollow, 0o600)
        if fd < 0 {
            tempPath.removeAll()
            throw FreezeFailure(step: .openImage, errno: -fd)
        }
        if isTreeRoot {
            lockFD = imageFD  // DIR/.NAME-PID.tmp stays locked while the tree is written
        }
        imageFD = Int32(fd)
    }

    /// Every record but memory is written and the writer split off (or, in place, memory too): tell
    /// the root and wait for its word. The root waits for every member, then lets them all thaw.
    @_noAllocation @_noLocks
    /// `writer`: the process that finishes the image when it is this one (in place); a copy-on-write
    /// writer's pid is already in the slot (the intermediate child put it there).
    mutating func treeCaptured(writer: Int? = nil) throws(FreezeFailure) {
        guard let tree else { return }
        if let writer { tree.member(memberIndex).pointee.writer_pid = Int32(truncatingIfNeeded: writer) }
        tree.setProgress(memberIndex, Int32(STASIS_MEMBER_CAPTURED))
        if isTreeMember {
            let phase = tree.waitForPhase(after: Int32(STASIS_TREE_PHASE_CAPTURE), root: Int(capture.pointee.sender_pid))
            guard phase == Int32(STASIS_TREE_PHASE_THAW) else { throw FreezeFailure(step: .treeAborted, errno: 0) }
            return
        }
        // The root: members are frozen and write quickly; a bound catches one that went away.
        if let failed = try tree.waitForMembers(1..<tree.memberCount, toReach: Int32(STASIS_MEMBER_CAPTURED),
                                                timeoutNanoseconds: 60_000_000_000, livenessCheck: false,
                                                stalled: { index throws(FreezeFailure) in
            // A frozen member leaves its handler only when killed (SIGKILL): gone, or a zombie.
            let member = Int(tree.member(index).pointee.process.pid)
            if RawSyscall.call(STASIS_NR_kill, member, 0) == -3 || isZombie(member) {
                throw FreezeFailure(step: .treeProcessExited, errno: 0, object: member)
            }
        })
        {
            throw FreezeFailure(step: .treeMemberFailed, errno: 0, object: failed)
        }
        tree.setPhase(Int32(STASIS_TREE_PHASE_THAW))
    }

    /// /proc/PID/stat says Z.
    @_noAllocation @_noLocks
    func isZombie(_ pid: Int) -> Bool { readStat(pid)?.isZombie ?? false }

    /// A copy-on-write writer of a tree: waits until the phase is THAW (or the tree was given up).
    @_noAllocation @_noLocks
    func waitForTreeThaw(_ tree: TreeControl) throws(FreezeFailure) {
        let root = isTreeRoot ? pid : Int(capture.pointee.sender_pid)
        var phase = tree.phase
        while phase == Int32(STASIS_TREE_PHASE_FREEZE) || phase == Int32(STASIS_TREE_PHASE_CAPTURE) {
            phase = tree.waitForPhase(after: phase, root: root)
        }
        if phase != Int32(STASIS_TREE_PHASE_THAW) { throw FreezeFailure(step: .treeAborted, errno: 0) }
    }

    /// A member's image is complete: fsync it, record its size and header CRC for the manifest.
    @_noAllocation @_noLocks
    mutating func finishMemberImage() throws(FreezeFailure) {
        guard let tree else { return }
        let synced = RawSyscall.call(STASIS_NR_fsync, Int(imageFD))
        if synced < 0 { throw FreezeFailure(step: .syncImage, errno: -synced) }
        let size = RawSyscall.call(STASIS_NR_lseek, Int(imageFD), 0, 2 /* SEEK_END */)
        if size < 0 { throw FreezeFailure(step: .syncImage, errno: -size) }
        RawSyscall.close(imageFD)
        imageFD = -1
        let member = tree.member(memberIndex)
        member.pointee.process.image_bytes = UInt64(size)
        member.pointee.process.image_header_crc = imageHeaderCRC
        publishedAt = monotonicNanoseconds()
        if isTreeMember {
            tempPath.removeAll()  // the root's now: it publishes the directory, or removes it
            tree.setProgress(memberIndex, Int32(STASIS_MEMBER_WRITTEN))
        }
    }

    /// A member's failure goes to the root, described here where the process's own state can be read.
    @_noAllocation @_noLocks
    mutating func reportToTree(_ failure: FreezeFailure) {
        guard let tree, isTreeMember else { return }
        let member = tree.member(memberIndex)
        if failure.step != .treeAborted {
            message.removeAll()
            var text = message
            describe(failure, into: &text)
            message = text
            let field = _unsafePerformance { stasis_tree_message(member) }
            let count = min(message.count, 255)
            for i in 0..<count { field[i] = CChar(bitPattern: message.bytes[i]) }
            field[count] = 0
            tree.fail(memberIndex, failure)
        }
    }

    /// Nothing of the tree stays in the program: unmapped before it runs again (a writer keeps its own).
    /// A member that was stopped when the checkpoint began (the root continued it) stops again.
    @_noAllocation @_noLocks
    mutating func leaveTree() {
        let stopAgain = isTreeMember && tree?.member(memberIndex).pointee.process.state == STASIS_TREE_STOPPED
        tree?.unmap()
        tree = nil
        if stopAgain { _ = RawSyscall.call(STASIS_NR_kill, pid, 19 /* SIGSTOP */) }
    }
}
