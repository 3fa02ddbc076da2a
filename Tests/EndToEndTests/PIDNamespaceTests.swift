import Glibc
import Testing

/// `stasis restart` of one process when the host cannot give it its original PID (issue 14): an ordinary
/// user may not choose PIDs, or the PID is taken. Then the program comes back in a new PID namespace (and a
/// user namespace for an ordinary user) with its original PID and thread ids; --no-namespace, or a system
/// that refuses user namespaces, gives the old new-PID restore. The fixture pid-identity checks from inside
/// (getpid, gettid of every thread, /proc/self/stat, /proc/self, /proc/thread-self, /proc/self/task,
/// pthread_kill, mutexes held across the checkpoint by main and by a worker); the tests check from outside
/// (NSpid, the user namespace, the image's PID and TIDs, restart's one line on stderr, its exit status).
@Suite(.serialized, .enabled(if: Stasis.isBuilt && getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0,
                             "needs root to switch to an ordinary user"))
struct PIDNamespaceTests {
    static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    static let noChoice = "stasis: choosing PIDs on the host needs root or CAP_CHECKPOINT_RESTORE"

    /// (a) uid 65534: three rounds of checkpoint → SIGKILL → restart. Rounds 2 and 3 checkpoint the
    /// restored program by its PID on the host (by root in round 2, by the user in 1 and 3); every image
    /// names the original PID and TIDs, every restore has them again in its own namespace.
    @Test func anOrdinaryUserGetsTheOriginalPIDAndThreadIDsInANamespaceThroughThreeCycles() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let (original, identity) = try start([binary], user: Self.asNobody, scratch: scratch, output: output)
        var restored: RestoredProgram? = nil
        for cycle in 1...3 {
            let pid = restored?.pid ?? original.pid
            let image = try checkpoint(pid, user: cycle == 2 ? [] : Self.asNobody, scratch: scratch, "cycle \(cycle)")
            let inImage = try ProcessIdentity(image: image)
            #expect(inImage.pid == identity.pid && Set(inImage.tids) == Set(identity.tids), "cycle \(cycle): the image has \(inImage)")
            if let restored {
                kill(pid, SIGKILL)  // through the namespace's init: restart dies of it too
                #expect(try restored.launcher.wait() == .signaled(SIGKILL), "cycle \(cycle): \(restored.logText)")
            } else {
                original.killAndReap()
            }
            let next = try restart(image, user: Self.asNobody, scratch: scratch, name: "cycle-\(cycle)")
            expectInNamespace(next, identity, line: "\(Self.noChoice); \(Self.inNamespace(next))", ownUser: true, "cycle \(cycle)")
            restored = next
        }
        let last = try #require(restored)
        kill(last.pid, SIGTERM)
        #expect(try last.launcher.wait() == .exited(0), "\(last.logText)")
        expectPass(output, identity)
    }

    /// (b) --no-namespace: the old way for an ordinary user, a new PID on the host and patched thread ids.
    @Test func noNamespaceGivesAnOrdinaryUserANewPID() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let (original, identity) = try start([binary, "new"], user: Self.asNobody, scratch: scratch, output: output)
        let image = try checkpoint(original.pid, user: Self.asNobody, scratch: scratch, "checkpoint")
        original.killAndReap()
        let restored = try restart(image, user: Self.asNobody, options: ["--no-namespace"], scratch: scratch, name: "restart")
        let inside = restored.idsInside()
        #expect(restored.pid != identity.pid && inside.pid == restored.pid && inside.levels == 1, "\(inside)")
        #expect(!restored.hasOwnUserNamespace)
        let lines = restored.logText.split(separator: "\n").filter { $0.hasPrefix("stasis:") && !$0.contains("restore warning") }
        #expect(lines == ["\(Self.noChoice); restored as PID \(restored.pid) (thread ids are patched)"], "\(restored.logText)")
        kill(restored.pid, SIGTERM)
        #expect(try restored.launcher.wait() == .exited(0), "\(restored.logText)")
        expectPass(output, ProcessIdentity(pid: restored.pid, tids: []), tidsToo: false)
    }

    /// (c) root, the original stopped but alive (its PID taken), the same image restarted twice at once:
    /// both come back in namespaces of their own (no user namespace: root may make PID namespaces) with the
    /// original ids and verify; then the original is continued and verifies too. Each restored copy writes
    /// to a file of its own (--fd 1=…), so that every PASS is counted.
    @Test func twoRestartsWhileTheOriginalLivesEachGetTheOriginalPIDInANamespace() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let (original, identity) = try start([binary], user: [], scratch: scratch, output: output)
        let image = try checkpoint(original.pid, user: [], scratch: scratch, "checkpoint")
        kill(original.pid, SIGSTOP)
        let (copies, outputs) = try restartTwiceAtOnce(image, scratch: scratch)
        #expect(copies[0].pid != copies[1].pid)
        for (index, copy) in copies.enumerated() {
            let line = "stasis: PID \(identity.pid) is in use; \(Self.inNamespace(copy))"
            expectInNamespace(copy, identity, line: line, ownUser: false, "copy \(index + 1)")
        }
        for copy in copies { kill(copy.pid, SIGTERM) }
        for (index, copy) in copies.enumerated() {
            #expect(try copy.launcher.wait() == .exited(0), "copy \(index + 1): \(copy.logText)")
            expectPass(outputs[index], identity)
        }
        kill(original.pid, SIGCONT)
        kill(original.pid, SIGTERM)
        #expect(try original.wait() == .exited(0))
        expectPass(output, identity)
        #expect((try String(contentsOfFile: output)).split(separator: "\n").filter { $0.hasPrefix("PASS") }.count == 1)
    }

    /// (c) root, the original gone, the same image restarted twice at once: one may win the PID on the
    /// host, the other (at least one) is told the PID is in use and gets it in a namespace; both verify.
    @Test func twoRestartsAtOnceOfAnImageWhoseProgramIsGoneBothVerify() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let (original, identity) = try start([binary], user: [], scratch: scratch, output: output)
        let image = try checkpoint(original.pid, user: [], scratch: scratch, "checkpoint")
        original.killAndReap()
        let (copies, outputs) = try restartTwiceAtOnce(image, scratch: scratch)
        let inNamespace = copies.filter { $0.idsInside().levels == 2 }
        #expect(inNamespace.count >= 1, "\(copies.map(\.logText))")
        for (index, copy) in copies.enumerated() {
            let inside = copy.idsInside()
            #expect(inside.pid == identity.pid, "copy \(index + 1): \(inside)")
            let namespaceLines = copy.logLines(containing: "PID namespace")
            if inside.levels == 2 {
                #expect(namespaceLines == ["stasis: PID \(identity.pid) is in use; \(Self.inNamespace(copy))"], "\(copy.logText)")
            } else {
                #expect(copy.pid == identity.pid && namespaceLines.isEmpty, "on the host: \(copy.logText)")
            }
        }
        for copy in copies { kill(copy.pid, SIGTERM) }
        for (index, copy) in copies.enumerated() {
            let end = try copy.launcher.wait()
            // On the host, another process may have taken an old thread id meanwhile (pid_max 32768, tests
            // in parallel): the restorer says so, and the mutexes held across the checkpoint then refuse to
            // unlock (README, known limits). A namespace has no such neighbours.
            withKnownIssue("an old thread id was taken on the host: \(copy.logText)", isIntermittent: true) {
                #expect(end == .exited(0), "copy \(index + 1): \(copy.logText)")
                expectPass(outputs[index], identity)
            } when: {
                copy.logText.contains("could not restore thread ids")
            }
        }
    }

    /// (d) A system that refuses user namespaces: uid 65534 in a user namespace of its own whose
    /// user.max_user_namespaces is 0 (a per-namespace limit: the host's is untouched), without any
    /// capability, restarts its image. No PID namespace can be had: one line says why, and the program
    /// comes back with a new PID.
    @Test(.enabled(if: access("/usr/bin/unshare", X_OK) == 0, "needs util-linux unshare"))
    func aSystemThatRefusesUserNamespacesFallsBackToANewPID() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let hostLimit = try String(contentsOfFile: "/proc/sys/user/max_user_namespaces")
        let (original, identity) = try start([binary, "new"], user: Self.asNobody, scratch: scratch, output: output)
        let image = try checkpoint(original.pid, user: Self.asNobody, scratch: scratch, "checkpoint")
        original.killAndReap()
        let pidFile = scratch.file("restored.pid")
        let script = """
            echo 0 > /proc/sys/user/max_user_namespaces || { echo "setup: cannot lower max_user_namespaces"; exit 99; }
            exec /usr/bin/setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all "$1" restart --pid-file "$2" "$3"
            """
        let restored = try RestoredProgram(
            Self.asNobody + ["/usr/bin/unshare", "--user", "--map-current-user", "--keep-caps", "/bin/sh", "-c", script, "sh",
                             Stasis.launcher, pidFile, image],
            pidFile: pidFile, log: scratch.file("restart.log"))
        try restored.waitForProgram()
        let inside = restored.idsInside()
        #expect(restored.pid != identity.pid && inside.pid == restored.pid && inside.levels == 1, "\(inside)")
        let lines = restored.logLines(containing: "namespace")
        #expect(lines.count == 1, "\(restored.logText)")
        let line = String(lines.first ?? "")
        #expect(line.hasPrefix("\(Self.noChoice); no PID namespace either: this system refuses user namespaces ("), "\(line)")
        #expect(line.hasSuffix("); see /proc/sys/user/max_user_namespaces; restored as PID \(restored.pid) (thread ids are patched)"),
                "\(line)")
        kill(restored.pid, SIGTERM)
        #expect(try restored.launcher.wait() == .exited(0), "\(restored.logText)")
        expectPass(output, ProcessIdentity(pid: restored.pid, tids: []), tidsToo: false)
        #expect(try String(contentsOfFile: "/proc/sys/user/max_user_namespaces") == hostLimit)
    }

    /// (e) The program's end passes through the namespace's init to restart: an exit code, and death by a
    /// signal the program raises (SIGALRM, no core). The SIGTERM that starts the check goes to restart,
    /// which forwards it to the program by its PID on the host.
    @Test(arguments: ["exit=42", "signal=\(SIGALRM)"])
    func theProgramsExitStatusPassesThroughTheNamespacesInit(ending: String) throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let (original, identity) = try start([binary, ending], user: Self.asNobody, scratch: scratch, output: output)
        let image = try checkpoint(original.pid, user: Self.asNobody, scratch: scratch, "checkpoint")
        original.killAndReap()
        let restored = try restart(image, user: Self.asNobody, scratch: scratch, name: "restart")
        expectInNamespace(restored, identity, line: "\(Self.noChoice); \(Self.inNamespace(restored))", ownUser: true, "restart")
        restored.launcher.send(SIGTERM)
        let expected: ChildProcess.Termination = ending == "exit=42" ? .exited(42) : .signaled(SIGALRM)
        #expect(try restored.launcher.wait() == expected, "\(restored.logText)")
        expectPass(output, identity)
    }

    /// A container's PID 1 (`unshare --pid --fork --mount-proc`: its threads are 2, 3 and 4) restarted by
    /// root: PID 1 is the host's, so the program comes back as the init of a new namespace, with PID 1
    /// and thread ids 2-4 again.
    ///
    /// Known bug (lazy restart, root's default): the restorer starts the pager (clone, clone, exit) inside
    /// the new namespace before it creates the threads. In a fresh namespace those clones take the lowest
    /// free PIDs (2, 3), so a thread's set_tid fails with EEXIST ("could not restore thread ids"), the
    /// threads get new ids and the mutexes held across the checkpoint refuse to unlock. The pager also
    /// becomes the program's child (it is the namespace's reaper). --eager has no pager.
    @Test(.enabled(if: access("/usr/bin/unshare", X_OK) == 0, "needs util-linux unshare"), arguments: [["--eager"], []])
    func aContainersPIDOneComesBackAsPIDOne(options: [String]) throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let container = try ChildProcess("/usr/bin/unshare", ["--pid", "--fork", "--mount-proc", "--kill-child", Stasis.launcher, "run",
                                                              "--dir", scratch.path, "--", binary], outputPath: output)
        try waitUntil("READY") {
            let text = (try? String(contentsOfFile: output)) ?? ""
            return text.contains("READY") || text.contains("FAIL") || processState(container.pid) == "Z"
        }
        let text = try String(contentsOfFile: output)
        let identity = try #require(ProcessIdentity(text, line: "READY"), "\(text)")
        try #require(identity.pid == 1 && identity.tids == [1, 2, 3, 4], "\(text)")
        let hostPID = try #require(children(of: container.pid).first)
        let image = try checkpoint(hostPID, user: [], scratch: scratch, "checkpoint")
        kill(hostPID, SIGKILL)
        try container.wait()
        // Without --eager too: a PID 1 program comes back eagerly (a lazy pager would become its child),
        // and no process restart makes takes one of its thread ids (ns_last_pid).
        let restored = try restart(image, user: [], options: options, scratch: scratch, name: "restart")
        #expect(!restored.logText.contains("could not restore thread ids"), "\(restored.logText)")
        expectInNamespace(restored, identity, line: "stasis: PID 1 is in use; \(Self.inNamespace(restored))", ownUser: false,
                          "PID 1")
        #expect(children(of: restored.pid).isEmpty, "the program has no child of ours")
        kill(restored.pid, SIGTERM)
        let end = try restored.launcher.wait()
        #expect(end == .exited(0), "\(restored.logText)")
        expectPass(output, identity)
    }

    /// (f) `stasis run --pid-namespace`: the job is PID 2 (TIDs 3-5) of a namespace from the start, `stasis
    /// run` stays its parent (--pid-file: its PID on the host) and dies of its SIGKILL; its image restores
    /// with the same ids: uid 65534's for uid 65534, and root's for root lazily (PID 2 is taken on the host,
    /// and the pager, made without a chosen PID, must not take TID 3-5 in the fresh namespace).
    @Test(arguments: ["uid 65534", "root"])
    func runInAPIDNamespaceGivesSmallPIDsThatEveryRestartGivesBack(_ who: String) throws {
        let user = who == "root" ? [] : Self.asNobody
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // whatever failed
        let (binary, output) = try prepare(scratch)
        let pidFile = scratch.file("run.pid")
        let command = user + [Stasis.launcher, "run", "--pid-namespace", "--pid-file", pidFile, "--dir", scratch.path, "--", binary]
        let run = try ChildProcess(command[0], Array(command.dropFirst()), outputPath: output)
        try waitUntil("READY") {
            let text = (try? String(contentsOfFile: output)) ?? ""
            return text.contains("READY") || text.contains("FAIL") || processState(run.pid) == "Z"
        }
        let text = try String(contentsOfFile: output)
        let identity = try #require(ProcessIdentity(text, line: "READY"), "\(text)")
        #expect(identity.pid == 2 && identity.tids == [2, 3, 4, 5], "\(text)")
        let host = try #require((try? String(contentsOfFile: pidFile)).flatMap { pid_t($0.trimmingCharacters(in: "\n")) })
        #expect(host != 2 && namespacePIDs(host) == [host, 2], "--pid-file holds the host PID")
        let image = try checkpoint(host, user: user, scratch: scratch, "checkpoint")
        kill(host, SIGKILL)
        #expect(try run.wait(seconds: 60) == .signaled(SIGKILL), "stasis run ends as its program did")

        let restored = try restart(image, user: user, scratch: scratch, name: "restart")
        let reason = who == "root" ? "stasis: PID 2 is in use" : Self.noChoice
        expectInNamespace(restored, identity, line: "\(reason); \(Self.inNamespace(restored))", ownUser: who != "root", "restart")
        kill(restored.pid, SIGTERM)
        #expect(try restored.launcher.wait() == .exited(0), "\(restored.logText)")
        expectPass(output, identity)
    }

    // ---- steps ------------------------------------------------------------------------------------------

    /// The tail of restart's line for a program restored in a namespace.
    static func inNamespace(_ restored: RestoredProgram) -> String {
        "restored in a new PID namespace with its original PID and thread ids (PID \(restored.pid) on the host)"
    }

    /// The scratch directory opened to uid 65534, the fixture, and its output file (the user's: the
    /// restorer reopens it as them).
    func prepare(_ scratch: Scratch) throws -> (binary: String, output: String) {
        chmod(scratch.path, 0o777)
        let binary = try compileFixture("pid-identity", into: scratch.path)
        let output = scratch.file("pid-identity.out")
        try "".write(toFile: output)
        chown(output, 65534, 65534)
        return (binary, output)
    }

    /// `stasis run -- FIXTURE…` (as `user`: a setpriv prefix, or root); the child and the ids it reported.
    func start(_ fixture: [String], user: [String], scratch: Scratch, output: String) throws -> (ChildProcess, ProcessIdentity) {
        let command = user + [Stasis.launcher, "run", "--dir", scratch.path, "--"] + fixture
        let child = try ChildProcess(command[0], Array(command.dropFirst()), outputPath: output)
        try waitUntil("READY") {
            let text = (try? String(contentsOfFile: output)) ?? ""
            return text.contains("READY") || text.contains("FAIL") || processState(child.pid) == "Z"
        }
        let text = try String(contentsOfFile: output)
        let identity = try #require(ProcessIdentity(text, line: "READY"), "\(text)")
        try #require(identity.pid == child.pid && identity.tids.count == 4, "\(text)")
        return (child, identity)
    }

    /// `stasis checkpoint PID` as `user`; the image (the last line of its output).
    func checkpoint(_ pid: pid_t, user: [String], scratch: Scratch, _ what: String) throws -> String {
        let log = scratch.file("checkpoint-\(UInt32.random(in: 0...UInt32.max)).log")
        let command = user + [Stasis.launcher, "checkpoint", String(pid)]
        let child = try ChildProcess(command[0], Array(command.dropFirst()), outputPath: log)
        let end = try child.wait(seconds: 120)
        let text = (try? String(contentsOfFile: log)) ?? ""
        try #require(end == .exited(0), "\(what): stasis checkpoint \(pid): \(text)")
        return text.split(separator: "\n").last.map(String.init) ?? ""
    }

    /// Two `stasis restart IMAGE` as root at once, each writing to a file of its own (--fd 1=…), once both
    /// programs are back; and those files.
    func restartTwiceAtOnce(_ image: String, scratch: Scratch) throws -> (copies: [RestoredProgram], outputs: [String]) {
        let outputs = [scratch.file("copy-1.out"), scratch.file("copy-2.out")]
        let copies = try outputs.enumerated().map { index, copyOutput in
            try RestoredProgram([Stasis.launcher, "restart", "--pid-file", scratch.file("copy-\(index + 1).pid"),
                                 "--fd", "1=\(copyOutput)", image],
                                pidFile: scratch.file("copy-\(index + 1).pid"), log: scratch.file("copy-\(index + 1).log"))
        }
        for copy in copies { try copy.waitForProgram() }
        return (copies, outputs)
    }

    /// `stasis restart --pid-file F OPTIONS IMAGE` as `user`, once the program is back.
    func restart(_ image: String, user: [String], options: [String] = [], scratch: Scratch, name: String) throws -> RestoredProgram {
        let pidFile = scratch.file("\(name).pid")
        let restored = try RestoredProgram(user + [Stasis.launcher, "restart", "--pid-file", pidFile] + options + [image],
                                           pidFile: pidFile, log: scratch.file("\(name).log"))
        try restored.waitForProgram()
        return restored
    }

    /// The program runs in a PID namespace of its own with `identity`'s PID and TIDs inside, another PID
    /// on the host, in a user namespace of its own when `ownUser`; restart said `line`, and nothing else
    /// about a namespace.
    func expectInNamespace(_ restored: RestoredProgram, _ identity: ProcessIdentity, line: String, ownUser: Bool, _ what: String,
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let inside = restored.idsInside()
        #expect(inside.levels == 2 && inside.pid == identity.pid && restored.pid != identity.pid,
                "\(what): host PID \(restored.pid), inside \(inside), expected \(identity)", sourceLocation: sourceLocation)
        #expect(inside.tids == Set(identity.tids), "\(what): thread ids inside", sourceLocation: sourceLocation)
        #expect(restored.hasOwnUserNamespace == ownUser, "\(what): a user namespace of its own", sourceLocation: sourceLocation)
        #expect(restored.logLines(containing: "namespace") == [Substring(line)], "\(what): \(restored.logText)",
                sourceLocation: sourceLocation)
    }

    /// The fixture's output says PASS with `identity` (its PID, and its TIDs when `tidsToo`) and no FAIL.
    func expectPass(_ output: String, _ identity: ProcessIdentity, tidsToo: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) {
        let text = (try? String(contentsOfFile: output)) ?? ""
        let passed = ProcessIdentity(text, line: "PASS pid-identity")
        #expect(!text.contains("FAIL") && passed?.pid == identity.pid, "\(text)", sourceLocation: sourceLocation)
        if tidsToo { #expect(passed?.tids == identity.tids, "\(text)", sourceLocation: sourceLocation) }
    }
}
