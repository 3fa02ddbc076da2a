// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// The root of a tree checkpoint freezes its descendants (stasis_tree.h has the protocol). Level by
// level: a process is signalled only once its parent is frozen, and its children are read only once
// it is frozen itself, so a process forked meanwhile is either in the checkpoint or never created
// (the kernel refuses a fork that a pending signal would interrupt).
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    /// The first child of any thread of this process (a zombie not yet reaped counts), or nil.
    @_noAllocation @_noLocks
    func firstChild(arena: inout FreezeArena) throws(FreezeFailure) -> Int? {
        var found: Int? = nil
        try forEachChild(of: nil, arena: &arena) { child in
            if found == nil { found = child }
        }
        return found
    }

    /// Calls `body` with every child of `pid` (nil: this process), from each thread's
    /// /proc/PID/task/TID/children ("PID PID ... ").
    @_noAllocation @_noLocks
    func forEachChild(of pid: Int?, arena: inout FreezeArena, _ body: (Int) throws(FreezeFailure) -> Void) throws(FreezeFailure) {
        let mark = arena.mark
        defer { arena.reset(to: mark) }
        let directoryCapacity = 16 * 1024, childrenCapacity = 64 * 1024
        guard let entries = arena.take(directoryCapacity), let children = arena.take(childrenCapacity),
            let pathMemory = arena.take(128)
        else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
        var path = TextBuffer(pathMemory, capacity: 128)
        appendProcPath(&path, pid)
        path.append("/task")
        var tasks = try TaskList(path: path.cString, buffer: entries, capacity: directoryCapacity)
        defer { tasks.close() }
        let text = children.assumingMemoryBound(to: UInt8.self)
        while let tid = try tasks.next() {
            path.removeAll()
            appendProcPath(&path, pid)
            path.append("/task/")
            path.append(decimal: tid)
            path.append("/children")
            // A thread gone since the listing has no file: no children.
            let count = ProcFile.read(path.cString, into: children, capacity: childrenCapacity)
            guard count > 0 else { continue }
            var list = ByteCursor(text, count: count)
            while let child = list.decimal() {
                try body(Int(child))
                list.skip(UInt8(ascii: " "))
            }
        }
    }

    @_noAllocation @_noLocks
    func appendProcPath(_ path: inout TextBuffer, _ pid: Int?) {
        if let pid {
            path.append("/proc/")
            path.append(decimal: pid)
        } else {
            path.append("/proc/self")
        }
    }

    /// The root, with every thread of its own frozen and at least one child: makes the control block
    /// and the tree's temporary directory, freezes every descendant, claims the number and opens its
    /// own member image. Returns the sequence. On a throw the caller aborts (abortTree).
    @_noAllocation @_noLocks
    mutating func freezeTree(arena: inout FreezeArena) throws(FreezeFailure) -> UInt64 {
        let control = try TreeControl.create()
        tree = control
        memberIndex = 0
        let block = control.block
        block.pointee.flags = (forkWriter ? 0 : STASIS_REQUEST_NO_FORK) | (skipUnsupported ? STASIS_REQUEST_SKIP_UNSUPPORTED : 0)
            | (compress ? STASIS_REQUEST_COMPRESS : STASIS_REQUEST_NO_COMPRESS)
        copyRequestKeyFile(into: block)
        let sequence = claimSequence()  // finalPath: DIR/NAME-PID-SEQ.stasis, the directory's name once published
        block.pointee.sequence = sequence
        try makeTreeDirectory()
        let field = _unsafePerformance { stasis_tree_directory(block) }
        for i in 0..<min(directory.count, Int(STASIS_MAX_PATH) - 1) { field[i] = CChar(bitPattern: directory.bytes[i]) }

        // The root itself is member 0.
        block.pointee.member_count = 1
        let root = control.member(0)
        root.pointee.process.pid = Int32(truncatingIfNeeded: pid)
        root.pointee.process.flags = STASIS_TREE_ROOT
        try describeProcess(0)
        fillOwnProcessFields(root)
        try listOwnDescriptors(0)
        control.setProgress(0, Int32(STASIS_MEMBER_FROZEN))

        try forEachChild(of: nil, arena: &arena) { child throws(FreezeFailure) in try addMember(child, parent: 0) }
        var levelStart = 1
        while levelStart < control.memberCount {
            let levelEnd = control.memberCount
            for index in levelStart..<levelEnd { try signalMember(index, arena: &arena) }
            // A member that exits before it answers (a fork storm's short-lived child) is a zombie now:
            // its parent is frozen and cannot reap it.
            if let failed = try control.waitForMembers(levelStart..<levelEnd, toReach: Int32(STASIS_MEMBER_FROZEN),
                                                       timeoutNanoseconds: Int64(STASIS_TREE_FREEZE_TIMEOUT_MS) * 1_000_000,
                                                       livenessCheck: false, stalled: { index throws(FreezeFailure) in try noticeExit(index) })
            {
                throw FreezeFailure(step: .treeMemberFailed, errno: 0, object: failed)
            }
            for index in levelStart..<levelEnd where control.member(index).pointee.process.state != STASIS_TREE_ZOMBIE {
                let parent = Int(control.member(index).pointee.process.pid)
                try forEachChild(of: parent, arena: &arena) { child throws(FreezeFailure) in try addMember(child, parent: index) }
            }
            levelStart = levelEnd
        }
        try classifyGroupsAndSessions()

        // Every member has mapped the block: the root's fd table is the program's again.
        var closing = control
        closing.closeDescriptor()
        tree = closing
        try openMemberImage()
        control.setPhase(Int32(STASIS_TREE_PHASE_CAPTURE))
        return sequence
    }

    /// A new member, as its parent's child list names it.
    @_noAllocation @_noLocks
    private func addMember(_ child: Int, parent: Int) throws(FreezeFailure) {
        guard let tree else { return }
        let index = tree.memberCount
        guard index < Int(STASIS_TREE_MAX_PROCESSES) else { throw FreezeFailure(step: .treeTooLarge, errno: 0) }
        let member = tree.member(index)
        member.pointee = stasis_tree_member_t()
        member.pointee.process.pid = Int32(truncatingIfNeeded: child)
        member.pointee.process.ppid = tree.member(parent).pointee.process.pid
        tree.block.pointee.member_count = UInt32(index + 1)
    }

    /// /proc/PID/stat (nil: this process), parsed; its name (between the first '(' and the last ')')
    /// into `name` (16 bytes) when given. nil when it cannot be read (the process is gone).
    @_noAllocation @_noLocks
    func readStat(_ pid: Int?, name: UnsafeMutablePointer<CChar>? = nil) -> ProcessStat? {
        var text = StackBuffer()
        var pathBytes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let count = withUnsafeMutableBytes(of: &pathBytes) { pathMemory in
            var path = TextBuffer(pathMemory.baseAddress!, capacity: 32)
            appendProcPath(&path, pid)
            path.append("/stat")
            return withUnsafeMutableBytes(of: &text.storage) { ProcFile.read(path.cString, into: $0.baseAddress!, capacity: $0.count) }
        }
        guard count > 0 else { return nil }
        return withUnsafeBytes(of: &text.storage) { bytes in
            if let name {
                var open = -1, close = -1
                for i in 0..<count {
                    if bytes[i] == UInt8(ascii: "(") && open < 0 { open = i }
                    if bytes[i] == UInt8(ascii: ")") { close = i }
                }
                if open >= 0 && close > open {
                    for i in 0..<min(close - open - 1, 15) { name[i] = CChar(bitPattern: bytes[open + 1 + i]) }
                }
            }
            return ProcessStat.parse(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count)
        }
    }

    /// /proc/PID/stat of member `index` into its record: ids, state, exit signal and status, name.
    @_noAllocation @_noLocks
    private func describeProcess(_ index: Int) throws(FreezeFailure) {
        guard let tree else { return }
        let member = tree.member(index)
        let target = Int(member.pointee.process.pid)
        let stat = readStat(index == 0 ? nil : target, name: _unsafePerformance { stasis_tree_comm(member) })
        guard let stat else { throw FreezeFailure(step: .readProc, errno: RawErrno.invalid, object: target) }
        if index == 0 { member.pointee.process.ppid = stat.ppid }
        member.pointee.process.pgid = stat.pgrp
        member.pointee.process.sid = stat.session
        member.pointee.process.exit_signal = stat.exitSignal
        if stat.isZombie {
            member.pointee.process.state = STASIS_TREE_ZOMBIE
            member.pointee.process.exit_status = stat.exitCode
        } else if stat.state == UInt8(ascii: "t") {
            throw FreezeFailure(step: .treeTraced, errno: 0, object: target)  // stopped by a tracer
        } else if stat.state == UInt8(ascii: "T") {
            // Stopped by a signal: continued for its capture (signalMember), stopped again after it.
            member.pointee.process.state = STASIS_TREE_STOPPED
        }
    }

    /// A signalled member that has not answered: if it has exited meanwhile, it is a zombie of the tree.
    @_noAllocation @_noLocks
    private func noticeExit(_ index: Int) throws(FreezeFailure) {
        guard let tree, tree.progress(index) == Int32(STASIS_MEMBER_SIGNALLED),
            tree.member(index).pointee.process.state != STASIS_TREE_ZOMBIE
        else { return }
        let wasStopped = tree.member(index).pointee.process.state == STASIS_TREE_STOPPED
        try describeProcess(index)
        if tree.member(index).pointee.process.state == STASIS_TREE_ZOMBIE {
            tree.setProgress(index, Int32(STASIS_MEMBER_FROZEN))
        } else if wasStopped {
            tree.member(index).pointee.process.state = STASIS_TREE_STOPPED  // (it runs for now: continued by us)
        } else {
            tree.member(index).pointee.process.state = STASIS_TREE_RUNNING
        }
    }

    /// Reads member `index`'s state and sends it the tree's freeze request, unless it is a zombie.
    @_noAllocation @_noLocks
    private func signalMember(_ index: Int, arena: inout FreezeArena) throws(FreezeFailure) {
        guard let tree else { return }
        let member = tree.member(index)
        let target = Int(member.pointee.process.pid)
        try describeProcess(index)
        if member.pointee.process.state == STASIS_TREE_ZOMBIE {
            tree.setProgress(index, Int32(STASIS_MEMBER_FROZEN))
            return
        }
        // The agent's handler must be installed, or the signal would kill it. A process in the middle
        // of execve shows it blocked (the agent blocks it across exec) or gets it back within moments.
        let trigger = UInt64(1) << UInt64(capture.pointee.config.pointee.trigger_signal - 1)
        let mark = arena.mark
        defer { arena.reset(to: mark) }
        guard let statusText = arena.take(8192), let pathMemory = arena.take(64) else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace)
        }
        var path = TextBuffer(pathMemory, capacity: 64)
        appendProcPath(&path, target)
        path.append("/status")
        var attempts = 0
        while true {
            let count = ProcFile.read(path.cString, into: statusText, capacity: 8192)
            if count <= 0 { throw FreezeFailure(step: .readProc, errno: count < 0 ? -count : RawErrno.invalid, object: target) }
            let status = ProcessStatus.parse(statusText.assumingMemoryBound(to: UInt8.self), count: count)
            if status.tracerPID != 0 { throw FreezeFailure(step: .treeTraced, errno: 0, object: target) }
            if status.caught & trigger != 0 || status.blocked & trigger != 0 { break }
            attempts += 1
            if attempts > 100 { throw FreezeFailure(step: .treeNoAgent, errno: 0, object: target) }
            var pause: (Int, Int) = (0, 10_000_000)
            _ = withUnsafeMutablePointer(to: &pause) { RawSyscall.call(STASIS_NR_nanosleep, Int(bitPattern: $0), 0) }
        }
        guard let infoMemory = arena.take(128) else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
        let info = infoMemory.bindMemory(to: stasis_queue_siginfo_t.self, capacity: 1)
        info.pointee = stasis_queue_siginfo_t()
        info.pointee.signo = capture.pointee.config.pointee.trigger_signal
        info.pointee.code = STASIS_SI_QUEUE
        info.pointee.pid = Int32(truncatingIfNeeded: pid)
        info.pointee.uid = UInt32(truncatingIfNeeded: uid)
        info.pointee.value = UInt64(STASIS_TREE_MAGIC) << 32 | UInt64(UInt32(bitPattern: tree.fd))
        let sent = RawSyscall.call(STASIS_NR_rt_sigqueueinfo, target, Int(info.pointee.signo), Int(bitPattern: infoMemory))
        if sent < 0 { throw FreezeFailure(step: .signalThread, errno: -sent, object: target) }
        // A stopped process runs no handler: SIGCONT lets it take the request (queued first, so it
        // comes first: the lower number), and it stops itself again once thawed. Its parent may see
        // that continue and stop (SIGCHLD, waitpid WCONTINUED/WUNTRACED); Docs/ARCHITECTURE.md 2.7.
        if member.pointee.process.state == STASIS_TREE_STOPPED {
            _ = RawSyscall.call(STASIS_NR_kill, target, 18 /* SIGCONT */)
        }
    }

    /// The root, when a tree checkpoint is given up: a stopped member continued for it that never
    /// joined (so will not stop itself again) is stopped again here.
    @_noAllocation @_noLocks
    func stopContinuedMembers() {
        guard let tree else { return }
        for index in 1..<max(tree.memberCount, 1) {
            let member = tree.member(index)
            if member.pointee.process.state == STASIS_TREE_STOPPED && tree.progress(index) == Int32(STASIS_MEMBER_SIGNALLED) {
                _ = RawSyscall.call(STASIS_NR_kill, Int(member.pointee.process.pid), 19 /* SIGSTOP */)
            }
        }
    }

    /// Group and session ids that name no process of the tree: the root's, when it is not their
    /// leader, belong to the job's surroundings (restart gives its own); any other is a group or
    /// session whose leader has exited. Restart recreates such a group with a stand-in; a session
    /// cannot be, so it is refused here.
    @_noAllocation @_noLocks
    private func classifyGroupsAndSessions() throws(FreezeFailure) {
        guard let tree else { return }
        let root = tree.member(0).pointee.process
        for index in 0..<tree.memberCount {
            let process = tree.member(index)
            var groupLeader = false, sessionLeader = false
            for other in 0..<tree.memberCount {
                let otherPID = tree.member(other).pointee.process.pid
                if otherPID == process.pointee.process.pgid { groupLeader = true }
                if otherPID == process.pointee.process.sid { sessionLeader = true }
            }
            if !groupLeader && process.pointee.process.pgid == root.pgid && root.pgid != root.pid {
                process.pointee.process.flags |= STASIS_TREE_OWN_GROUP
            }
            if !sessionLeader {
                if process.pointee.process.sid == root.sid && root.sid != root.pid {
                    process.pointee.process.flags |= STASIS_TREE_OWN_SESSION
                } else {
                    throw FreezeFailure(step: .treeSessionLeaderGone, errno: 0, object: Int(process.pointee.process.pid))
                }
            }
        }
    }

    /// What only the process itself can tell: its parent-death signal and subreaper flag.
    @_noAllocation @_noLocks
    func fillOwnProcessFields(_ member: UnsafeMutablePointer<stasis_tree_member_t>) {
        var value: Int32 = 0
        if withUnsafeMutablePointer(to: &value, { RawSyscall.call(STASIS_NR_prctl, 2 /* PR_GET_PDEATHSIG */, Int(bitPattern: $0)) }) == 0 {
            member.pointee.process.pdeath_signal = value
        }
        value = 0
        if withUnsafeMutablePointer(to: &value, { RawSyscall.call(STASIS_NR_prctl, 37 /* PR_GET_CHILD_SUBREAPER */, Int(bitPattern: $0)) }) == 0,
            value != 0
        {
            member.pointee.process.flags |= STASIS_TREE_CHILD_SUBREAPER
        }
    }

    /// This process's descriptors (number, device, inode) into its list in the control block, for the
    /// later members' kcmp search. The agent's own (image, lock, control block, tracker) are left out.
    @_noAllocation @_noLocks
    func listOwnDescriptors(_ index: Int) throws(FreezeFailure) {
        guard let tree else { return }
        let list = tree.descriptors(index)
        var entries = StackBuffer()
        let tracker = DirtyPageTracker(config: capture.pointee.config, pid: pid)?.descriptor() ?? -1
        var count = 0
        try withUnsafeMutableBytes(of: &entries.storage) { buffer throws(FreezeFailure) in
            var fds = try TaskList(path: RawSyscall.cString("/proc/self/fd"), buffer: buffer.baseAddress!, capacity: buffer.count)
            defer { fds.close() }
            while let fd = try fds.next() {
                if fd == Int(fds.descriptor) || fd == Int(imageFD) || fd == Int(lockFD) || fd == Int(tree.fd) || fd == Int(tracker) {
                    continue
                }
                guard count < Int(STASIS_TREE_MAX_MEMBER_FDS) else {
                    throw FreezeFailure(step: .treeTooManyDescriptors, errno: 0, object: pid)
                }
                var status: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                             UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
                    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                let statted = withUnsafeMutablePointer(to: &status) { RawSyscall.call(STASIS_NR_fstat, fd, Int(bitPattern: $0)) }
                if statted != 0 { continue }  // closed meanwhile (by the agent itself)
                // The access mode + 1 (0: unknown), for a pipe's ends (FileDescriptors.pipeJoinsTree).
                let access = RawSyscall.call(STASIS_NR_fcntl, fd, 3 /* F_GETFL */)
                list[count] = stasis_tree_descriptor_t(fd: Int32(fd), access: access < 0 ? 0 : UInt32(access & 3) + 1,
                                                       device: status.0, inode: status.1)
                count += 1
            }
        }
        tree.member(index).pointee.descriptor_count = UInt32(count)
    }

    /// `stasis checkpoint --key FILE`: the members sign with the same key.
    @_noAllocation @_noLocks
    private func copyRequestKeyFile(into block: UnsafeMutablePointer<stasis_tree_control_t>) {
        guard capture.pointee.request_id != 0 else { return }
        let request = protocolBuffer.assumingMemoryBound(to: stasis_checkpoint_request_t.self)
        guard request.pointee.magic == STASIS_REQUEST_MAGIC else { return }
        let key = (protocolBuffer + Int(STASIS_REQUEST_KEY_FILE_OFFSET)).assumingMemoryBound(to: UInt8.self)
        let field = _unsafePerformance { stasis_tree_key_file(block) }
        var i = 0
        while i < Int(STASIS_MAX_PATH) - 1 && key[i] != 0 {
            field[i] = CChar(bitPattern: key[i])
            i += 1
        }
    }
}
