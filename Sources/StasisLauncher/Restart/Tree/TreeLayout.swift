import CStasisSpawn
import StasisImage

/// How the processes of a tree are made again (Docs/ARCHITECTURE.md 3.6): who creates whom, which
/// session and group each ends in, and the stand-ins for groups whose leader had exited. Decided from
/// the manifest alone, before anything exists; CStasisSpawn (stasis_tree_spawn.h) carries it out.
///
/// Sessions and groups can only be made in a few ways: setsid() makes a new session (its caller leads it
/// and its group), fork() inherits the parent's, setpgid() makes or joins a group of the caller's own
/// session. So a process that is not a session leader must be in its parent's session, and the group it
/// joins must be of that session and exist when it joins: groups are made first (their leader, or a
/// stand-in with the group's id), then joined, then the stand-ins and zombies end.
struct TreeLayout: Equatable {
    enum Kind: Equatable {
        case restore  // a live process: its restorer execs on its image
        case zombie   // exits with `exitStatus` once every process is in its group
        case standIn  // holds group `pid` while members join, then exits; its creator reaps it
    }

    struct Member: Equatable {
        var pid: Int32
        /// Index of the member that creates it; -1 for the root (`stasis restart` creates it).
        var creator: Int
        /// The group it ends in; nil: `stasis restart`'s own (OWN_GROUP).
        var pgid: Int32?
        /// It leads a new session (setsid()).
        var newSession: Bool
        var kind: Kind
        var exitSignal: Int32
        var exitStatus: Int32
        var deathSignal: Int32
        /// Index into the manifest's processes; nil for a stand-in.
        var process: Int?
        /// Its process name (a zombie keeps it; a stand-in is "stasis-group").
        var name: String
    }

    /// The manifest's processes in its order, then the stand-ins.
    var members: [Member] = []

    var standIns: [Member] { members.filter { $0.kind == .standIn } }

    init(_ manifest: TreeManifest) throws(LauncherError) {
        let processes = manifest.processes
        let index = Dictionary(processes.enumerated().map { ($0.element.pid, $0.offset) }, uniquingKeysWith: { a, _ in a })
        func refuse(_ why: String) -> LauncherError { LauncherError(.restoreFailed, "cannot restore the tree: \(why)") }
        func name(_ p: TreeProcessRecord) -> String { "process \(p.pid) (\(p.comm))" }
        /// Where a process's session is: restart's, or the one process `sid` leads.
        func inRestartSession(_ p: TreeProcessRecord) -> Bool { p.flags.contains(.ownSession) && p.sid != p.pid }

        for (i, p) in processes.enumerated() {
            let creator = i == 0 ? -1 : index[p.ppid] ?? -1
            guard i == 0 || creator >= 0 else { throw refuse("\(name(p))'s parent \(p.ppid) is not in the tree") }
            // Sessions.
            let newSession = p.sid == p.pid
            if newSession {
                guard p.pgid == p.pid else { throw refuse("\(name(p)) leads session \(p.sid) but is in group \(p.pgid)") }
            } else if p.flags.contains(.ownSession) {
                if i > 0 && !inRestartSession(processes[creator]) {
                    throw refuse("\(name(p)) stayed in the outer session its parent \(p.ppid) left; restoring that is not supported")
                }
            } else {
                guard let leader = index[p.sid], processes[leader].sid == processes[leader].pid else {
                    throw refuse("\(name(p))'s session leader \(p.sid) is not in the tree")
                }
                guard i > 0, processes[creator].sid == p.sid, !inRestartSession(processes[creator]) else {
                    throw refuse("\(name(p)) is in session \(p.sid) but its parent is not; restoring that is not supported")
                }
            }
            // Groups (a group of the same session; stand-ins are added below).
            var pgid: Int32? = p.pgid
            if p.flags.contains(.ownGroup) && p.pgid != p.pid {
                guard inRestartSession(p) else {
                    throw refuse("\(name(p)) is in an outside group \(p.pgid) but not in the outside session")
                }
                pgid = nil
            } else if p.pgid != p.pid, let leader = index[p.pgid] {
                let l = processes[leader]
                guard l.sid == p.sid && inRestartSession(l) == inRestartSession(p) else {
                    throw refuse("\(name(p)) is in group \(p.pgid) of another session")
                }
            }
            let exitSignal = i == 0 ? 17 /* SIGCHLD: restart waits for it */ : p.exitSignal
            if p.state == .zombie {
                let signal = p.exitStatus & 0x7f
                guard signal == 0 || (1...64).contains(signal), p.exitStatus & ~0xffff == 0 else {
                    throw LauncherError(.badImage, "the tree manifest gives zombie \(p.pid) the exit status 0x\(String(p.exitStatus, radix: 16))")
                }
            }
            members.append(Member(pid: p.pid, creator: creator, pgid: pgid, newSession: newSession,
                                  kind: p.state == .zombie ? .zombie : .restore, exitSignal: exitSignal,
                                  exitStatus: p.exitStatus, deathSignal: p.parentDeathSignal, process: i, name: p.comm))
        }
        // A group whose leader had exited: a stand-in with its id, made by the first live member in it (it
        // reaps the stand-in before it execs), or, for a group of zombies only, by the first one's parent
        // (of the same session).
        var made = Set<Int32>()
        for (i, p) in processes.enumerated() {
            guard let pgid = members[i].pgid, pgid != p.pid, index[pgid] == nil, !made.contains(pgid) else { continue }
            for other in processes where other.pgid == pgid && !(other.sid == p.sid && inRestartSession(other) == inRestartSession(p)) {
                throw refuse("group \(pgid) has members in two sessions (\(p.pid), \(other.pid))")
            }
            made.insert(pgid)
            let live = processes.indices.first { processes[$0].pgid == pgid && processes[$0].state != .zombie }
            members.append(Member(pid: pgid, creator: live ?? members[i].creator, pgid: pgid, newSession: false, kind: .standIn,
                                  exitSignal: 17, exitStatus: 0, deathSignal: 0, process: nil, name: "stasis-group"))
        }
        guard members.count <= Int(STASIS_TREE_SPAWN_MAX) else {
            throw LauncherError(.badImage, "the tree has \(members.count) processes and stand-ins; at most \(STASIS_TREE_SPAWN_MAX)")
        }
    }
}
