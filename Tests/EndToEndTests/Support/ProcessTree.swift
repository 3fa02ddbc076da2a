import Glibc
import Testing

/// A process tree started under `stasis run`, taken through cycles of `stasis checkpoint ROOT` → SIGKILL of
/// every process of the tree → `stasis restart IMAGE` (the restored tree has the original PIDs).
///
/// Algorithm:
///   start     `stasis run -- FIXTURE` (execs in place: the root is the test's child); READY PID... names
///             the descendants; their ppid, pgid and sid (and the root's pgid and sid) are noted
///   checkpoint the root; the image is a directory (COMM-PID-SEQ.stasis/), the last line of the output
///   kill      SIGSTOP top-down from the root (a stopped process forks no more; each one's children are
///             listed only once it is stopped), then SIGKILL all of them; the root's parent (the test, or
///             the `stasis restart` in the foreground) reaps the root; the others are orphans that PID 1
///             reaps only after a second or more here, and restart needs their PIDs: wait until /proc has
///             none of them
///   restart   `stasis restart --pid-file F IMAGE`: F must name the root; every READY descendant must
///             exist again, with the ids noted at the start
///   finish    SIGTERM to the root: the fixture verifies itself, prints PASS and exits 0, which its parent
///             reports
/// Every process seen in the tree is remembered with its start time, so that a failing test still ends
/// them (and never a process that reused a PID).
///
/// With `restartsInNamespace` every restart must put the tree in a PID namespace of its own (issue 14;
/// ProcessTree+Namespace.swift): the members keep their original PIDs inside and have others on the host.
/// Then `root` and `descendants` are PIDs inside, `rootHost` and `hostPID(_:)` the host's numbers (read
/// from NSpid), and "kill all" is a SIGKILL to the namespace's init (the `stasis restart` child).
final class ProcessTree {
    let scratch: Scratch
    let output: String
    /// The root's PID as the tree knows it: its original PID (inside a PID namespace after such a restart).
    let root: pid_t
    /// The root's PID on the host: `root`, or its number there when the tree is in a PID namespace.
    var rootHost: pid_t
    private(set) var descendants: [pid_t] = []
    /// The root's parent: the `stasis run` child (the root itself) at first, then the current `stasis restart`.
    var parent: ChildProcess
    let runAs: [String]
    /// Host PIDs (of members, and of a namespace's init) with their start times.
    var started: [pid_t: UInt64] = [:]
    /// The ids noted at READY, by original PID (the tree's own numbers, inside a namespace too).
    private(set) var ids: [pid_t: ProcessIDs] = [:]
    var restarts = 0
    /// Names this tree's restart files apart from another's restored from the same scratch directory.
    var label = ""
    /// Every restart must restore the tree in a PID namespace (else on the host with the original PIDs).
    let restartsInNamespace: Bool
    /// The tree is in a PID namespace now: its init's host PID, and each member's host PID by its PID inside.
    var namespaceInit: pid_t?
    var hostPIDs: [pid_t: pid_t] = [:]

    /// STASIS_TREE_TEST_CYCLES=N: cycles per case (default 3). 0 checks a fixture and this harness without any
    /// checkpoint (the cases whose checkpoints are the test itself still take them).
    static let cycles: Int = getenv("STASIS_TREE_TEST_CYCLES").flatMap { Int(String(cString: $0)) } ?? 3

    /// `runAs`: a command prefix, e.g. setpriv to an ordinary user (used for `run` and `restart`; the output
    /// file is then writable by all, for the restored tree to reopen). `newSession`: the root leads a session
    /// and a group of its own (a tree with no group or session outside it, as a PID namespace needs).
    /// `runOptions` go to `stasis run` (--compress...).
    init(_ arguments: [String], scratch: Scratch, runAs: [String] = [], runOptions: [String] = [], workingDirectory: String? = nil,
         newSession: Bool = false, restartsInNamespace: Bool = false) throws {
        self.scratch = scratch
        output = scratch.file("tree.out")
        self.runAs = runAs
        self.restartsInNamespace = restartsInNamespace
        if !runAs.isEmpty {
            let fd = open(output, O_WRONLY | O_CREAT, 0o666)
            if fd >= 0 { close(fd) }
            chmod(output, 0o666)
        }
        let command = runAs + [Stasis.launcher, "run", "--dir", scratch.path] + runOptions + ["--"] + arguments
        parent = try ChildProcess(command[0], Array(command.dropFirst()), outputPath: output,
                                  workingDirectory: workingDirectory, newSession: newSession)
        root = parent.pid
        rootHost = root
    }

    /// A second tree: `original`'s image restored beside it (in a PID namespace), as `original` knew it at
    /// READY. Returns once restored (restart's checks), or throws.
    init(restoring image: String, like original: ProcessTree) throws {
        scratch = original.scratch
        output = original.output
        runAs = original.runAs
        restartsInNamespace = true
        root = original.root
        rootHost = -1  // set by the restart, before anything signals it
        descendants = original.descendants
        ids = original.ids
        label = original.label + "copy-"
        restarts = 1
        let (launcher, pidFile, log) = try Self.launchRestart(image, runAs: runAs, scratch: scratch, name: label + "1")
        parent = launcher
        try awaitRestoredInNamespace(launcher, pidFile: pidFile, log: log)
    }

    deinit {
        // Only processes of this tree: the root if it is still the one seen, every member by its start time.
        // A namespace's init first: its end ends every process inside. One not noted yet (a restart that
        // failed its checks) is a child of our unreaped `stasis restart` at PID 1 of its namespace.
        var inits: [pid_t] = []
        if ChildRegistry.shared.contains(parent.pid) {  // (once reaped, its PID may be someone else's)
            inits = children(of: parent.pid).filter { namespacePIDs($0).count >= 2 && namespacePIDs($0).last == 1 }
        }
        if let initPID = namespaceInit, let start = started[initPID], startTime(initPID) == start { inits.append(initPID) }
        if !inits.isEmpty {
            for initPID in inits { kill(initPID, SIGKILL) }
            _ = try? parent.wait(seconds: 10)  // `stasis restart` ends with its init; a timeout kills it below
        }
        if rootHost > 0, let start = started[rootHost], startTime(rootHost) == start { for pid in stopAll() { kill(pid, SIGKILL) } }
        for (pid, start) in started where startTime(pid) == start { kill(pid, SIGKILL) }
        parent.killAndReap()
    }

    var text: String { (try? String(contentsOfFile: output)) ?? "" }

    func lines(startingWith prefix: String) -> [Substring] {
        text.split(separator: "\n").filter { $0.hasPrefix(prefix) }
    }

    /// Waits for the fixture's "READY PID..." line (a FAIL line or the root's end fails at once).
    func waitForReady(seconds: Double = 60) throws {
        try waitUntil("READY from the tree's root", seconds: seconds) {
            text.contains("READY") || text.contains("FAIL") || processState(root) == nil || processState(root) == "Z"
        }
        guard let line = lines(startingWith: "READY").first else { throw TestFailure("no READY line: \(text)") }
        descendants = line.split(separator: " ").dropFirst().compactMap { pid_t($0) }
        remember(members())
        for pid in [root] + descendants { ids[pid] = ProcessIDs(pid) }
    }

    /// `stasis checkpoint ROOT` (the root's host PID): exit code and output.
    func checkpoint() throws -> (code: Int32, output: String) {
        try Stasis.run(["checkpoint", String(rootHost)], in: scratch.path)
    }

    /// A checkpoint that must succeed; the image directory (the last line of the output).
    func checkpointImage(_ what: String) throws -> String {
        let (code, text) = try checkpoint()
        guard code == 0 else { throw TestFailure("\(what): stasis checkpoint exited \(code): \(text)") }
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        var status = stat()
        guard stat(image, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw TestFailure("\(what): the image \(image) is not a tree image directory; output: \(text)")
        }
        return image
    }

    /// SIGKILLs every process of the tree; returns when the root is reaped and every PID is free again.
    func killAll() throws {
        if namespaceInit != nil { return try killNamespace() }
        let killed = stopAll()
        for pid in killed { kill(pid, SIGKILL) }
        let end = try parent.wait(seconds: 60)
        #expect(end == .signaled(SIGKILL), "the root's parent reports the root's SIGKILL")
        try waitUntil("every killed process gone from /proc", seconds: 60) {
            killed.allSatisfy { access("/proc/\($0)", F_OK) != 0 }
        }
    }

    /// `stasis restart IMAGE`; returns once the root and every READY descendant are back with their ids.
    func restart(_ image: String) throws {
        restarts += 1
        let (launcher, pidFile, log) = try Self.launchRestart(image, runAs: runAs, scratch: scratch, name: label + String(restarts))
        parent = launcher
        if restartsInNamespace { return try awaitRestoredInNamespace(launcher, pidFile: pidFile, log: log) }
        func logText() -> String { (try? String(contentsOfFile: log)) ?? "" }
        let restored = try waitForPIDFile(pidFile, of: launcher, log: log, "restart \(restarts)")
        guard let restored else { throw TestFailure("restart \(restarts) ended without restoring: \(logText())") }
        guard restored == root else {
            throw TestFailure("restart \(restarts): the root came back as PID \(restored), not \(root): \(logText())")
        }
        do {
            try waitUntil("every descendant back", seconds: 30) { descendants.allSatisfy { processState($0) != nil } }
        } catch {
            throw TestFailure("restart \(restarts): missing \(descendants.filter { processState($0) == nil }): \(logText())")
        }
        remember(members())
        for (pid, before) in ids {
            let now = ProcessIDs(pid)
            #expect(now?.sameAs(before, ppid: pid != root) == true, "restart \(restarts): PID \(pid) had \(String(describing: before)), now \(String(describing: now))")
        }
    }

    /// `stasis restart --pid-file F IMAGE` started (as `runAs`): the launcher, F and its output file.
    static func launchRestart(_ image: String, runAs: [String], scratch: Scratch,
                              name: String) throws -> (launcher: ChildProcess, pidFile: String, log: String) {
        let pidFile = scratch.file("restored-\(name).pid")
        let log = scratch.file("restart-\(name).log")
        let command = runAs + [Stasis.launcher, "restart", "--pid-file", pidFile, image]
        return (try ChildProcess(command[0], Array(command.dropFirst()), outputPath: log), pidFile, log)
    }

    /// `count` rounds of checkpoint → kill → restart; `before(cycle)` runs before each checkpoint and
    /// `after(cycle)` after each restart.
    func cycle(_ count: Int = ProcessTree.cycles, settle: useconds_t = 300_000, before: (Int) throws -> Void = { _ in },
               after: (Int) throws -> Void = { _ in }) throws {
        for cycle in stride(from: 1, through: count, by: 1) {
            usleep(settle)
            try before(cycle)
            let image = try checkpointImage("cycle \(cycle)")
            try killAll()
            try restart(image)
            try after(cycle)
        }
    }

    /// SIGTERM to the root: the fixture verifies itself. Its exit status, as its parent reports it.
    func finish(seconds: Double = 120) throws -> ChildProcess.Termination {
        usleep(200_000)
        guard rootHost > 0 else { throw TestFailure("no root to tell") }  // never kill(-1, ...)
        kill(rootHost, SIGTERM)
        return try parent.wait(seconds: seconds)
    }

    /// finish(), expecting exit 0, `pass` in the output and no FAIL.
    func expectPass(_ pass: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let end = try finish()
        let text = text
        #expect(end == .exited(0), "\(text)", sourceLocation: sourceLocation)
        #expect(text.contains(pass) && !text.contains("FAIL"), "\(text)", sourceLocation: sourceLocation)
    }

    /// Every process under the root now (children of all its threads, recursively), root first; host PIDs.
    func members() -> [pid_t] {
        var found: [pid_t] = []
        var queue = [rootHost]
        while !queue.isEmpty {
            let pid = queue.removeFirst()
            guard !found.contains(pid), processState(pid) != nil else { continue }
            found.append(pid)
            queue += children(of: pid)
        }
        return found
    }

    func remember(_ pids: [pid_t]) {
        for pid in pids { if let start = startTime(pid) { started[pid] = start } }
    }

    /// SIGSTOP top-down; the stopped tree, root first, plus READY descendants no longer under the root.
    /// (On the host only: READY descendants are original PIDs.)
    func stopAll() -> [pid_t] {
        var order: [pid_t] = []
        var queue = [rootHost]
        while !queue.isEmpty {
            let pid = queue.removeFirst()
            guard !order.contains(pid), let state = processState(pid) else { continue }
            if state != "Z" {
                kill(pid, SIGSTOP)
                try? waitUntil("\(pid) stopped", seconds: 2) { ["T", "t", "Z", nil].contains(processState(pid)) }
            }
            order.append(pid)
            queue += children(of: pid)
        }
        remember(order)
        for pid in descendants where !order.contains(pid) {
            if let start = started[pid], startTime(pid) == start { order.append(pid) }
        }
        return order
    }
}

/// What a tree restore must give back to a process besides its PID.
struct ProcessIDs: Equatable, CustomStringConvertible {
    var ppid, pgid, sid: pid_t
    init?(_ pid: pid_t) {
        guard let fields = procStat(pid), fields.count > 3, let ppid = pid_t(fields[1]), let pgid = pid_t(fields[2]),
              let sid = pid_t(fields[3]) else { return nil }
        (self.ppid, self.pgid, self.sid) = (ppid, pgid, sid)
    }
    func sameAs(_ other: ProcessIDs, ppid checkPPID: Bool) -> Bool {
        pgid == other.pgid && sid == other.sid && (!checkPPID || ppid == other.ppid)
    }
    var description: String { "ppid \(ppid) pgid \(pgid) sid \(sid)" }
}

/// The fields of /proc/PID/stat after the command name: [0] is the state, [1] ppid, [2] pgrp, [3] session,
/// [19] starttime. nil when the process is gone.
func procStat(_ pid: pid_t) -> [Substring]? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(after: close)...].split(separator: " ")
}

/// "R", "S", "T", "Z"...; nil when gone.
func processState(_ pid: pid_t) -> String? { procStat(pid).flatMap { $0.first.map(String.init) } }

func startTime(_ pid: pid_t) -> UInt64? { procStat(pid).flatMap { $0.count > 19 ? UInt64($0[19]) : nil } }

/// The children of every thread of `pid`.
func children(of pid: pid_t) -> [pid_t] {
    opendirNames("/proc/\(pid)/task").filter { $0.first?.isNumber == true }.flatMap { tid in
        ((try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/children")) ?? "").split(separator: " ").compactMap {
            pid_t(String($0).trimmingCharacters(in: "\n "))
        }
    }
}

/// Where `pid` sleeps in the kernel ("anon_pipe_write", "do_wait"...).
func kernelWaitChannel(_ pid: pid_t) -> String { (try? String(contentsOfFile: "/proc/\(pid)/wchan")) ?? "" }
