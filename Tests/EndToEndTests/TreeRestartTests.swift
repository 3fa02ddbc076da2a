import CStasisABI
import Glibc
import StasisImage
import Testing

/// `stasis restart TREE_DIR` on trees made by hand: processes started and checkpointed on their own
/// (no children, so an ordinary checkpoint), then declared one tree in a manifest with chosen parents,
/// groups, sessions, a zombie, a stopped process and a group whose leader had exited. What the
/// restored processes are is read from /proc.
@Suite(.serialized) struct TreeRestartTests {
    /// One process of a hand-made tree.
    struct Planned {
        var pid: Int32
        var ppid: Int32
        var pgid: Int32
        var sid: Int32
        var state: TreeProcessRecord.State = .running
        var flags: TreeProcessRecord.Flags = [.ownSession]
        var exitStatus: Int32 = 0
    }

    /// Starts `count` tree-member processes under `stasis run`, checkpoints each, kills it; returns the
    /// PIDs, images and output files.
    static func checkpointMembers(_ count: Int, fillMiB: Int, scratch: Scratch) throws -> [(pid: Int32, image: String, log: String)] {
        let program = try compileFixture("tree-member", into: scratch.path)
        var result: [(pid: Int32, image: String, log: String)] = []
        for i in 0..<count {
            let log = scratch.file("member-\(i).log")
            let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", program, String(fillMiB)], outputPath: log)
            try waitUntil("READY") { ((try? String(contentsOfFile: log)) ?? "").contains("READY") }
            let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
            try #require(code == 0, "checkpoint: \(text)")
            result.append((child.pid, String(text.split(separator: "\n").last ?? ""), log))
            child.killAndReap()
        }
        return result
    }

    /// A PID nobody has (nor, as far as one can tell, will take before the restart).
    static func freePID(avoiding taken: Set<Int32>) -> Int32 {
        while true {
            let pid = Int32.random(in: 20000...30000)
            if !taken.contains(pid) && kill(pid, 0) != 0 && errno == ESRCH { return pid }
        }
    }

    /// Writes DIR/tree and copies each image to DIR/PID.stasis.
    static func writeTree(_ planned: [Planned], images: [Int32: String], to directory: String) throws {
        mkdir(directory, 0o700)
        var manifest = TreeManifest()
        for p in planned {
            var record = TreeProcessRecord()
            record.pid = p.pid
            record.ppid = p.ppid
            record.pgid = p.pgid
            record.sid = p.sid
            record.state = p.state
            record.flags = p.flags
            record.exitStatus = p.exitStatus
            record.comm = "tree-member"
            if let image = images[p.pid] {
                let bytes = try readBytes(image)
                let header = try ImageHeader.decode(from: ByteArraySource(bytes))
                record.imageBytes = UInt64(bytes.count)
                record.imageHeaderCRC = header.headerCRC
                try writeBytes(bytes, to: directory + "/\(p.pid).stasis")
                if p.flags.contains(.root) {
                    manifest.header = header
                    manifest.header.threadCount = 0
                }
            }
            manifest.processes.append(record)
        }
        try writeBytes(manifest.encode(), to: directory + "/" + TreeManifest.fileName)
    }

    /// Fields of /proc/PID/stat after the name: [0] state, [1] ppid, [2] pgrp, [3] session, [49] exit code.
    static func stat(_ pid: Int32) -> [String]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    static func pendingChildSignal(_ pid: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status") else { return false }
        for line in text.split(separator: "\n") where line.hasPrefix("ShdPnd:") || line.hasPrefix("SigPnd:") {
            let mask = UInt64(line.split(separator: "\t").last ?? "", radix: 16) ?? 0
            if mask & (1 << (UInt64(SIGCHLD) - 1)) != 0 { return true }
        }
        return false
    }

    @Test(.enabled(if: Stasis.isBuilt && geteuid() == 0, "needs `swift build` and root (original PIDs)"), .timeLimit(.minutes(3)))
    func restoresParentsGroupsSessionsAZombieAndAStoppedProcess() throws {
        let scratch = Scratch()
        let members = try Self.checkpointMembers(5, fillMiB: 4, scratch: scratch)
        let (r, a, b, c, d) = (members[0].pid, members[1].pid, members[2].pid, members[3].pid, members[4].pid)
        var taken = Set(members.map(\.pid))
        let zombie = Self.freePID(avoiding: taken)
        taken.insert(zombie)
        let goneLeader = Self.freePID(avoiding: taken)
        let session = getsid(0)
        let planned = [
            Planned(pid: r, ppid: 1, pgid: r, sid: session, flags: [.root, .ownSession]),
            Planned(pid: a, ppid: r, pgid: r, sid: session),                                  // joins the root's group
            Planned(pid: b, ppid: r, pgid: b, sid: session, state: .stopped),                 // its own group, stopped
            Planned(pid: zombie, ppid: r, pgid: r, sid: session, state: .zombie, exitStatus: 7 << 8),
            Planned(pid: c, ppid: a, pgid: goneLeader, sid: session),                         // a group whose leader exited
            Planned(pid: d, ppid: b, pgid: d, sid: d, flags: []),                             // its own session
        ]
        let directory = scratch.file("tree-member-\(r)-0001.stasis")
        try Self.writeTree(planned, images: Dictionary(uniqueKeysWithValues: members.map { ($0.pid, $0.image) }), to: directory)

        let pidFile = scratch.file("root.pid")
        let log = scratch.file("restart.log")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, directory], outputPath: log)
        try waitUntil("the root's PID file", seconds: 60) { access(pidFile, R_OK) == 0 || !((try? String(contentsOfFile: log)) ?? "").isEmpty }
        let restartLog = (try? String(contentsOfFile: log)) ?? ""
        try #require(access(pidFile, R_OK) == 0, "restart failed: \(restartLog)")
        #expect(try String(contentsOfFile: pidFile) == "\(r)\n")
        defer {
            for pid in [d, c, a, b] { kill(pid, SIGKILL) }
            kill(r, SIGKILL)
            _ = try? restart.wait()
        }

        let root = try #require(Self.stat(r))
        #expect(root[1] == String(restart.pid) && root[2] == String(r) && root[3] == String(session))
        let childA = try #require(Self.stat(a))
        #expect(childA[1] == String(r) && childA[2] == String(r) && childA[3] == String(session))
        let stopped = try #require(Self.stat(b))
        #expect(stopped[0] == "T" && stopped[1] == String(r) && stopped[2] == String(b))
        let dead = try #require(Self.stat(zombie))
        #expect(dead[0] == "Z" && dead[1] == String(r) && dead[2] == String(r))
        #expect(dead.count > 49 && dead[49] == String(7 << 8), "the zombie exit status: \(dead.suffix(3))")
        let grandchild = try #require(Self.stat(c))
        #expect(grandchild[1] == String(a) && grandchild[2] == String(goneLeader) && grandchild[3] == String(session))
        #expect(kill(goneLeader, 0) != 0 && errno == ESRCH, "the stand-in for the group is gone")
        let leader = try #require(Self.stat(d))
        #expect(leader[1] == String(b) && leader[2] == String(d) && leader[3] == String(d))
        // The zombie's exit and the stopped child's stop were taken by the restore: the root (which blocks
        // SIGCHLD) has no SIGCHLD pending from them.
        // (The PID file is written as the tree is let go: the root drains it a moment later.)
        #expect(throws: Never.self, "root has a SIGCHLD the restore caused") {
            try waitUntil("the root drained SIGCHLD", seconds: 5) { !Self.pendingChildSignal(r) }
        }

        // Everyone runs its program: continued, then asked to check itself.
        // Children first, each checked before its parent ends (its getppid() would change).
        kill(b, SIGCONT)
        for i in [4, 3, 1, 2] {
            kill(members[i].pid, SIGTERM)
            try waitUntil("process \(members[i].pid) checked itself") { ((try? String(contentsOfFile: members[i].log)) ?? "").contains("PASS") }
        }
        let outputs = members.map { (try? String(contentsOfFile: $0.log)) ?? "" }
        #expect(outputs[1].contains("PASS \(a) \(r) \(r) \(session)"))
        #expect(outputs[4].contains("PASS \(d) \(b) \(d) \(d)"))
        kill(r, SIGTERM)
        #expect(try restart.wait() == .exited(0), "restart exits as the root did")
        #expect(((try? String(contentsOfFile: members[0].log)) ?? "").contains("PASS \(r) \(restart.pid) \(r) \(session)"))
    }

    /// A tree the agent checkpointed (the parent fixture: a parent and its zombie child), signed: a wrong
    /// key restores nothing (exit 11); the right one, eagerly, brings back the zombie as the parent's
    /// child, which the parent then reaps with the status it died with.
    @Test(.enabled(if: Stasis.isBuilt && geteuid() == 0, "needs `swift build` and root (original PIDs)"), .timeLimit(.minutes(3)))
    func restartsASignedTreeWithAZombieTheParentThenReaps() throws {
        let scratch = Scratch()
        let binary = try compileFixture("parent", into: scratch.path)
        let key = scratch.file("key")
        let other = scratch.file("other-key")
        try writeBytes(Array("a tree key".utf8), to: key)
        try writeBytes(Array("not the key".utf8), to: other)
        let output = scratch.file("out")
        func text() -> String { (try? String(contentsOfFile: output)) ?? "" }
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--key", key, "--", binary], outputPath: output)
        try waitUntil("READY") { text().contains("READY") }
        let child = text().split(separator: "\n").first { $0.hasPrefix("READY") }.flatMap { Int32($0.dropFirst(6)) } ?? -1
        kill(program.pid, SIGHUP)
        try waitUntil("the child is a zombie") { Self.stat(child)?.first == "Z" }
        let (code, checkpointText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        try #require(code == 0, "\(checkpointText)")
        let directory = String(checkpointText.split(separator: "\n").last ?? "")
        program.killAndReap()
        try waitUntil("PID 1 reaps the orphaned zombie", seconds: 30) { kill(child, 0) != 0 }

        let (wrong, wrongText) = try Stasis.run(["restart", "--key", other, directory], in: scratch.path)
        #expect(wrong == 11, "\(wrongText)")
        #expect(kill(program.pid, 0) != 0 && kill(child, 0) != 0, "nothing was created")

        let pidFile = scratch.file("root.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--key", key, "--eager", "--pid-file", pidFile, directory],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("the root's PID file") {
            access(pidFile, R_OK) == 0 || !((try? String(contentsOfFile: scratch.file("restart.log"))) ?? "").isEmpty
        }
        try #require(access(pidFile, R_OK) == 0, "\((try? String(contentsOfFile: scratch.file("restart.log"))) ?? "")")
        let zombie = try #require(Self.stat(child))
        #expect(zombie[0] == "Z" && zombie[1] == String(program.pid))
        kill(program.pid, SIGUSR1)
        try waitUntil("REAPED") { text().contains("REAPED") }
        #expect(text().contains("REAPED status \(SIGTERM)"), "\(text())")
        kill(program.pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect(text().contains("PASS"), "\(text())")
    }

    /// Run from a terminal, a tree whose root leads its own group gets the terminal's foreground while it
    /// runs: Ctrl-Z stops the job and `stasis restart` with it (the terminal back in its own group), a
    /// SIGCONT to `stasis restart` continues both (the terminal the job's again).
    @Test(.enabled(if: Stasis.isBuilt && geteuid() == 0, "needs `swift build` and root (original PIDs)"), .timeLimit(.minutes(2)))
    func theRootsGroupHasTheTerminalAndCtrlZStopsTheJob() throws {
        let scratch = Scratch()
        let members = try Self.checkpointMembers(2, fillMiB: 0, scratch: scratch)
        let (r, a) = (members[0].pid, members[1].pid)
        let planned = [
            Planned(pid: r, ppid: 1, pgid: r, sid: 1, flags: [.root, .ownSession]),
            Planned(pid: a, ppid: r, pgid: r, sid: 1),
        ]
        let directory = scratch.file("tree.stasis")
        try Self.writeTree(planned, images: Dictionary(uniqueKeysWithValues: members.map { ($0.pid, $0.image) }), to: directory)
        let terminal = try TerminalTests.PseudoTerminal()
        let pidFile = scratch.file("root.pid")
        let log = scratch.file("restart.log")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, directory], outputPath: log,
                                       inputPath: terminal.slavePath, newSession: true)
        try waitUntil("the root's PID file") { access(pidFile, R_OK) == 0 || !((try? String(contentsOfFile: log)) ?? "").isEmpty }
        try #require(access(pidFile, R_OK) == 0, "\((try? String(contentsOfFile: log)) ?? "")")
        defer { kill(a, SIGKILL); kill(r, SIGKILL); _ = try? restart.wait() }
        func foreground() -> pid_t { tcgetpgrp(terminal.master) }
        #expect(foreground() == r, "the job's group has the terminal")

        var suspend: UInt8 = 0x1a  // ^Z
        #expect(write(terminal.master, &suspend, 1) == 1)
        try waitUntil("the job and stasis restart stopped") { Self.stat(r)?[0] == "T" && Self.stat(restart.pid)?[0] == "T" }
        #expect(Self.stat(a)?[0] == "T", "the whole group stopped")
        #expect(foreground() == restart.pid, "stasis restart took the terminal back")
        kill(restart.pid, SIGCONT)
        try waitUntil("the job runs again") { Self.stat(r)?[0] == "S" && Self.stat(a)?[0] == "S" && Self.stat(restart.pid)?[0] == "S" }
        #expect(foreground() == r, "the terminal is the job's again")

        kill(a, SIGTERM)
        try waitUntil("PASS") { ((try? String(contentsOfFile: members[1].log)) ?? "").contains("PASS") }
        kill(r, SIGTERM)
        #expect(try restart.wait() == .exited(0))
    }

    /// `--interval` checkpoints the restored tree again and again (its helpers are reaped as they end,
    /// beside the lazy pagers `stasis restart` also reaps).
    @Test(.enabled(if: Stasis.isBuilt && geteuid() == 0, "needs `swift build` and root (original PIDs)"), .timeLimit(.minutes(2)))
    func aRestoredTreeIsCheckpointedEveryInterval() throws {
        let scratch = Scratch()
        let members = try Self.checkpointMembers(2, fillMiB: 2, scratch: scratch)
        let (r, a) = (members[0].pid, members[1].pid)
        let session = getsid(0)
        let directory = scratch.file("tree.stasis")
        try Self.writeTree([Planned(pid: r, ppid: 1, pgid: r, sid: session, flags: [.root, .ownSession]),
                            Planned(pid: a, ppid: r, pgid: r, sid: session)],
                           images: Dictionary(uniqueKeysWithValues: members.map { ($0.pid, $0.image) }), to: directory)
        let later = scratch.file("later")
        mkdir(later, 0o700)
        let pidFile = scratch.file("root.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--interval", "1s", "--dir", later, "--pid-file", pidFile, directory],
                                       outputPath: scratch.file("restart.log"))
        defer { kill(a, SIGKILL); kill(r, SIGKILL); _ = try? restart.wait() }
        try waitUntil("two tree checkpoints", seconds: 30) {
            opendirNames(later).filter { $0.hasSuffix(".stasis") && access(later + "/" + $0 + "/tree", F_OK) == 0 }.count >= 2
        }
        kill(a, SIGTERM)
        try waitUntil("PASS") { ((try? String(contentsOfFile: members[1].log)) ?? "").contains("PASS") }
        kill(r, SIGTERM)
        #expect(try restart.wait() == .exited(0))
    }

    @Test(.enabled(if: Stasis.isBuilt && geteuid() == 0, "needs `swift build` and root (original PIDs)"), .timeLimit(.minutes(2)))
    func refusesATreeWhosePIDIsTakenBeforeCreatingAnything() throws {
        let scratch = Scratch()
        let members = try Self.checkpointMembers(2, fillMiB: 0, scratch: scratch)
        let sleeper = try ChildProcess("/bin/sleep", ["60"], outputPath: scratch.file("sleep.log"))
        defer { sleeper.killAndReap() }
        let session = getsid(0)
        let planned = [
            Planned(pid: members[0].pid, ppid: 1, pgid: members[0].pid, sid: session, flags: [.root, .ownSession]),
            Planned(pid: members[1].pid, ppid: members[0].pid, pgid: members[0].pid, sid: session),
            Planned(pid: sleeper.pid, ppid: members[0].pid, pgid: members[0].pid, sid: session, state: .zombie, exitStatus: 0),
        ]
        let directory = scratch.file("tree.stasis")
        try Self.writeTree(planned, images: Dictionary(uniqueKeysWithValues: members.map { ($0.pid, $0.image) }), to: directory)
        // --no-namespace: without it the tree would come back in a PID namespace of its own.
        let (code, output) = try Stasis.run(["restart", "--no-namespace", directory], in: scratch.path)
        #expect(code == 13, "\(output)")
        #expect(output.contains("PID \(sleeper.pid) (sleep) is in use by another process"), "\(output)")
        #expect(kill(members[0].pid, 0) != 0 && kill(members[1].pid, 0) != 0, "nothing was created")
    }

    @Test(.enabled(if: Stasis.isBuilt && geteuid() == 0, "needs `swift build` and root (original PIDs)"), .timeLimit(.minutes(2)))
    func aMemberThatFailsStopsTheWholeTreeAndIsNamed() throws {
        let scratch = Scratch()
        let members = try Self.checkpointMembers(3, fillMiB: 1, scratch: scratch)
        // Damage the last member's page data (the launcher does not read it; its restorer finds it).
        let victim = members[2]
        var bytes = try readBytes(victim.image)
        let image = try Image.decode(from: ByteArraySource(bytes))
        let area = try #require(image.memoryAreas.first { $0.dataBytes > 0 && $0.flags.contains(.anonymous) })
        bytes[Int(area.dataOffset) + 10] ^= 0xff
        try writeBytes(bytes, to: victim.image)
        let session = getsid(0)
        let (r, a) = (members[0].pid, members[1].pid)
        let planned = [
            Planned(pid: r, ppid: 1, pgid: r, sid: session, flags: [.root, .ownSession]),
            Planned(pid: a, ppid: r, pgid: r, sid: session),
            Planned(pid: victim.pid, ppid: a, pgid: r, sid: session),
        ]
        let directory = scratch.file("tree.stasis")
        try Self.writeTree(planned, images: Dictionary(uniqueKeysWithValues: members.map { ($0.pid, $0.image) }), to: directory)
        let (code, output) = try Stasis.run(["restart", "--eager", directory], in: scratch.path)
        #expect(code == 3, "\(output)")
        #expect(output.contains("\(victim.pid).stasis is damaged"), "\(output)")
        for pid in [r, a, victim.pid] { #expect(kill(pid, 0) != 0, "process \(pid) was left behind") }
    }
}
