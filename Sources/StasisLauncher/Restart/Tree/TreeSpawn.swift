import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// The processes of a tree, made by CStasisSpawn (stasis_tree_spawn.h) from a TreeLayout and each live
/// process's descriptor plan and restorer argv; then heard through their status pipes, and either let go
/// (one byte each on the go pipe) or aborted (every process started is killed and reaped).
final class TreeSpawn {
    /// What the restorer of a live process needs (TreeLayout.Member.kind == .restore).
    struct Restore {
        var plan: FileDescriptorPlan
        var arguments: RestorerArguments
        var cwd: String
        var umask: UInt32
    }

    let layout: TreeLayout
    let control: UnsafeMutablePointer<stasis_tree_spawn_control_t>
    private let memory = CMemory()
    private let members: UnsafeMutablePointer<stasis_tree_spawn_member_t>

    /// Set by startInNamespace: the tree lives in a PID namespace of its own.
    private(set) var namespace: NamespaceInit?

    /// `restores`: by layout member index, for every live process. `restartGroup`: for OWN_GROUP (0: the
    /// group each process inherits, in a PID namespace where restart's group has no number).
    /// `dropCapabilities`: the restorers run in a user namespace of ours (NamespaceInit).
    init(_ layout: TreeLayout, restorer: String, restores: [Int: Restore], restartGroup: pid_t,
         dropCapabilities: Bool = false) throws(LauncherError) {
        self.layout = layout
        guard let control = stasis_tree_spawn_control_map() else {
            throw LauncherError(.failure, "cannot map the tree's control block: \(Errno.current)")
        }
        self.control = control
        members = memory.allocate(stasis_tree_spawn_member_t.self, count: layout.members.count)
        for (i, m) in layout.members.enumerated() {
            var member = stasis_tree_spawn_member_t()
            member.pid = m.pid
            member.creator = Int32(m.creator)
            member.pgid = m.pgid ?? restartGroup
            member.new_session = m.newSession ? 1 : 0
            member.kind = m.kind == .restore ? UInt32(STASIS_TREE_SPAWN_RESTORE)
                : m.kind == .zombie ? UInt32(STASIS_TREE_SPAWN_ZOMBIE) : UInt32(STASIS_TREE_SPAWN_STAND_IN)
            member.exit_signal = m.exitSignal
            member.exit_status = m.exitStatus
            member.death_signal = m.deathSignal
            withUnsafeMutableBytes(of: &member.name) { raw in
                for (i, byte) in m.name.utf8.prefix(15).enumerated() { raw[i] = byte }
            }
            if var restore = restores[i] {
                restore.arguments.dropCapabilities = dropCapabilities
                member.plan = stasis_spawn_plan_t(
                    path: memory.string(restorer),
                    argv: memory.argv([restorer] + restore.arguments.strings),
                    moves: memory.copy(restore.plan.moves), move_count: Int32(restore.plan.moves.count),
                    keep_stdio: restore.plan.keepStdio, cwd: memory.string(restore.cwd), umask: restore.umask,
                    wanted_pid: m.pid, epoll_adds: memory.copy(restore.plan.epollAdds),
                    epoll_add_count: Int32(restore.plan.epollAdds.count), keep_restore_capability: dropCapabilities ? 1 : 0,
                    wanted_pid_only: 0)
            } else {
                member.plan.path = memory.string("")
                member.plan.argv = memory.argv([])
                // A zombie drops its capabilities too (stasis_tree_spawn.h): its exit status must stay readable.
                member.plan.keep_restore_capability = dropCapabilities && m.kind == .zombie ? 1 : 0
            }
            members[i] = member
        }
    }

    deinit { stasis_tree_spawn_control_unmap(control) }

    /// Clones the root; the rest of the tree grows from it. The root's PID, or the clone3 errno.
    func start() -> Result<pid_t, Errno> {
        let live = layout.members.filter { $0.kind == .restore }.count
        var tree = stasis_tree_spawn_t(members: members, count: Int32(layout.members.count), live: Int32(live), control: control)
        let pid = stasis_tree_spawn_start(&tree)
        return pid > 0 ? .success(pid) : .failure(Errno(rawValue: -pid))
    }

    /// The same in a new PID namespace: its init clones the root (stasis_namespace_spawn.h).
    /// `lastPID`: the highest PID or TID of the tree's images (NamespaceInit.start).
    func startInNamespace(lastPID: pid_t) -> Result<NamespaceInit, NamespaceInit.Refusal> {
        let live = layout.members.filter { $0.kind == .restore }.count
        var tree = stasis_tree_spawn_t(members: members, count: Int32(layout.members.count), live: Int32(live), control: control)
        let highest = max(lastPID, layout.members.map(\.pid).max() ?? 0)
        let started = NamespaceInit.start(lastPID: highest) { settings in
            var settings = settings
            return stasis_tree_spawn_in_namespace(&tree, &settings)
        }
        if case .success(let namespace) = started { self.namespace = namespace }
        return started
    }

    /// A member's PID on the host: `pid` itself, or in a namespace the number the host knows it by
    /// (nil: no such process there). Looked up again when a process is not known yet.
    func hostPID(_ pid: pid_t) -> pid_t? {
        guard let namespace else { return pid }
        if hostPIDs[pid] == nil { hostPIDs = namespace.hostPIDs() }
        return hostPIDs[pid]
    }
    private var hostPIDs: [pid_t: pid_t] = [:]

    /// The first failure the processes recorded: which member, at which step, with which errno.
    var failure: (member: Int, step: Int32, error: Int32)? {
        let failed = Int(control.pointee.failed)
        guard failed > 0 else { return nil }
        let step = withUnsafeBytes(of: &control.pointee.step) { $0.load(fromByteOffset: (failed - 1) * 4, as: Int32.self) }
        let error = withUnsafeBytes(of: &control.pointee.error) { $0.load(fromByteOffset: (failed - 1) * 4, as: Int32.self) }
        return (failed - 1, step, error)
    }

    /// A recorded failure as one line.
    func failureMessage(_ failure: (member: Int, step: Int32, error: Int32), comm: (Int) -> String) -> LauncherError {
        let m = layout.members[failure.member]
        let who = m.kind == .standIn ? "the stand-in for process group \(m.pid)" : "process \(m.pid) (\(comm(failure.member)))"
        let error = Errno(rawValue: failure.error)
        let what: String
        switch failure.step {
        case Int32(STASIS_TREE_STEP_SETSID): what = "cannot make its session (setsid: \(error))"
        case Int32(STASIS_TREE_STEP_OWN_GROUP): what = "cannot make its process group (setpgid: \(error))"
        case Int32(STASIS_TREE_STEP_CLONE):
            if failure.error == EEXIST {
                return LauncherError(.pidInUse, "cannot restore the tree: PID \(m.pid) was taken by another process meanwhile; restart again")
            }
            what = "cannot be created with its PID (clone3: \(error))"
        case Int32(STASIS_TREE_STEP_JOIN_GROUP): what = "cannot join process group \(m.pgid.map(String.init) ?? "of stasis restart") (setpgid: \(error))"
        case Int32(STASIS_TREE_STEP_WAIT_CHILD): what = "cannot wait for a zombie or stand-in child (waitid: \(error))"
        case Int32(STASIS_TREE_STEP_DEATH_SIGNAL): what = "cannot set its parent-death signal (\(error))"
        case Int32(STASIS_TREE_STEP_DESCRIPTORS): what = "cannot put its descriptors in place (dup3: \(error))"
        case Int32(STASIS_TREE_STEP_EPOLL): what = "cannot register its epoll descriptors again (epoll_ctl: \(error))"
        case Int32(STASIS_TREE_STEP_CHDIR): what = "cannot change to its working directory (chdir: \(error))"
        case Int32(STASIS_TREE_STEP_EXEC): what = "cannot execute the restorer (\(error))"
        case Int32(STASIS_TREE_STEP_TIMEOUT): what = "waited \(STASIS_TREE_SPAWN_TIMEOUT_MS / 1000) s for the other processes of the tree"
        default: what = "failed at step \(failure.step) (\(error))"
        }
        return LauncherError(.restoreFailed, "cannot restore the tree: \(who) \(what)")
    }

    /// Kills every process started (and, since `stasis restart` is a child subreaper meanwhile, every
    /// process that became its child: orphans of killed ones, lazy pagers) and reaps them all.
    func abort() {
        stasis_tree_spawn_abort(control)
        if let namespace {
            // The members' PIDs are the namespace's: the init's end ends every one of them.
            try? ProcessControl.send(SIGKILL, to: namespace.pid)  // ESRCH: gone already
            killAndReapChildren(seconds: 10)
            return
        }
        let started = withUnsafeBytes(of: &control.pointee.started) { Array($0) }
        for (i, m) in layout.members.enumerated() where i < started.count && started[i] != 0 {
            try? ProcessControl.send(SIGKILL, to: m.pid)  // ESRCH: gone already
        }
        killAndReapChildren(seconds: 10)
    }
}

/// C memory for the spawn structures, freed with this object (every process of the tree has its copy).
final class CMemory {
    private var blocks: [UnsafeMutableRawPointer] = []

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(1, count) * MemoryLayout<T>.stride)
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    func copy<T>(_ values: [T]) -> UnsafePointer<T>? {
        guard !values.isEmpty else { return nil }
        let p = allocate(T.self, count: values.count)
        for (i, value) in values.enumerated() { p[i] = value }
        return UnsafePointer(p)
    }

    func string(_ text: String) -> UnsafePointer<CChar> {
        let bytes = Array(text.utf8CString)
        let p = allocate(CChar.self, count: bytes.count)
        for (i, byte) in bytes.enumerated() { p[i] = byte }
        return UnsafePointer(p)
    }

    /// A NULL-terminated argv.
    func argv(_ strings: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?> {
        let p = allocate(UnsafeMutablePointer<CChar>?.self, count: strings.count + 1)
        for (i, text) in strings.enumerated() { p[i] = UnsafeMutablePointer(mutating: string(text)) }
        p[strings.count] = nil
        return UnsafePointer(p)
    }

    deinit { for block in blocks { block.deallocate() } }
}
