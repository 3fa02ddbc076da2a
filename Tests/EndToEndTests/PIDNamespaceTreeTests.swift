import Glibc
import StasisImage
import Testing

/// Process trees restored in a PID namespace of their own (issue 14): when the host cannot give a tree its
/// original PIDs (an ordinary user cannot choose PIDs; or they are taken, even for root), `stasis restart`
/// makes a namespace whose init clones the root with its original PID, and the tree grows from it. The
/// fixtures (Tests/Fixtures/tree-*) verify themselves at SIGTERM; ProcessTree (restartsInNamespace) checks
/// from outside, through NSpid, that every member has its original PID inside and its ppid, pgid and sid.
/// Each root leads a session of its own (`newSession`): a group or session outside the tree has no number
/// inside the namespace (getpgid and getsid say 0 there).
/// The suite runs as root; "as uid 65534" means `stasis run` and `stasis restart` run through setpriv.
@Suite(.serialized, .enabled(if: Stasis.isBuilt && getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0,
                             "needs `swift build`, root and setpriv"))
struct PIDNamespaceTreeTests {
    static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    /// A scratch directory uid 65534 can write its images and PID files into.
    static func sharedScratch() -> Scratch {
        let scratch = Scratch()
        chmod(scratch.path, 0o777)
        return scratch
    }

    /// (1) uid 65534: a parent with a zombie (exited 42) and a running child, every process SIGKILLed, comes
    /// back in a namespace (a user namespace too, no capability left) with its PIDs; twice more from the
    /// restored tree, checkpointed by its root's host PID. Then waitid/waitpid on both children work.
    @Test(.timeLimit(.minutes(5))) func anOrdinaryUsersTreeComesBackInANamespaceThreeTimes() throws {
        let scratch = Self.sharedScratch()
        let binary = try compileFixture("tree-zombie", into: scratch.path)
        let tree = try ProcessTree([binary], scratch: scratch, runAs: Self.asNobody, newSession: true, restartsInNamespace: true)
        try tree.waitForReady()
        let zombie = tree.descendants[0]
        /// A zombie of the root with exit status 42 (stat's exit_code, the last field, as root on the host reads it).
        func isZombieOfRoot() -> Bool {
            guard let host = tree.hostPID(zombie), let fields = procStat(host), fields.count > 49 else { return false }
            return fields[0] == "Z" && fields[1] == Substring(String(tree.rootHost)) && fields[49].filter(\.isNumber) == String(42 << 8)
        }
        try tree.cycle(3, before: { cycle in
            #expect(isZombieOfRoot(), "cycle \(cycle): the zombie before the checkpoint")
        }, after: { cycle in
            #expect(isZombieOfRoot(), "cycle \(cycle): the zombie after the restart")
            let log = tree.restartLog()
            if cycle == 1 {
                #expect(log.contains("stasis: choosing PIDs on the host needs root or CAP_CHECKPOINT_RESTORE; restored in a new PID namespace"),
                        "\(log)")
            }
            let initPID = try #require(tree.namespaceInit)
            #expect(namespaceOf(initPID, "pid") != namespaceOf(getpid(), "pid"), "cycle \(cycle): the init is in a new PID namespace")
            #expect(namespaceOf(initPID, "user") != namespaceOf(getpid(), "user"), "cycle \(cycle): and a new user namespace")
            // Zombies too: a zombie's exit status in /proc/PID/stat shows only to a reader holding its
            // capabilities, and the tree's next checkpoint (by the root, which has none) reads it there.
            // Each restorer drops them just before it returns into the program, which may be a moment
            // after --pid-file is written (the go): wait for that, then check.
            let none = "0000000000000000"
            try? waitUntil("cycle \(cycle): every member past its restorer", seconds: 10) {
                tree.hostPIDs.values.allSatisfy { statusFields($0)["CapPrm"] == none }
            }
            for (pid, host) in tree.hostPIDs {
                let status = statusFields(host)
                #expect(status["Uid"]?.hasPrefix("65534\t65534") == true && status["CapEff"] == none && status["CapPrm"] == none,
                        "cycle \(cycle): process \(pid) (host \(host)) is uid 65534's, without capabilities: \(status)")
            }
        })
        try tree.expectPass("PASS zombie")
    }

    /// (2) uid 65534 restores a tree while the original still runs (so its PIDs are taken on the host): the
    /// copy comes back in a namespace and both run; each signals its process group and passes.
    /// (Under --no-namespace this is refused: ProcessTreeTests.anOrdinaryUserIsRefusedATreeWhosePIDsAreTaken.)
    @Test(.timeLimit(.minutes(3))) func anOrdinaryUserRestoresATreeBesideTheRunningOriginal() throws {
        let scratch = Self.sharedScratch()
        let binary = try compileFixture("tree-pgroup", into: scratch.path)
        let tree = try ProcessTree([binary], scratch: scratch, runAs: Self.asNobody, newSession: true)
        try tree.waitForReady()
        let image = try tree.checkpointImage("the checkpoint of uid 65534's tree")
        let copy = try ProcessTree(restoring: image, like: tree)
        let log = copy.restartLog()
        #expect(([tree.root] + tree.descendants).contains { log.contains("stasis: PID \($0) (tree-pgroup) is in use; restored in a new PID namespace") },
                "the line names a taken PID: \(log)")
        expectUntouched(tree, "with the copy running")
        try copy.expectPass("PASS pgroup")
        #expect(occurrences("PASS pgroup", in: tree.text) == 1, "the copy's PASS: \(tree.text)")
        try tree.expectPass("PASS pgroup")
        #expect(occurrences("PASS pgroup", in: tree.text) == 2, "both PASS: \(tree.text)")
    }

    /// (3) root restores a tree whose PIDs the original holds, stopped (SIGSTOP): the copy comes back in a
    /// namespace (no user namespace: root may make one); it is checkpointed there and restored again while
    /// the original still holds the PIDs; then the copy passes, and the original, continued, too.
    @Test(.timeLimit(.minutes(3))) func rootRestoresATreeWhosePIDsTheStoppedOriginalHolds() throws {
        let scratch = Scratch()
        let binary = try compileFixture("tree-session", into: scratch.path)
        let tree = try ProcessTree([binary], scratch: scratch, newSession: true)
        try tree.waitForReady()
        let image = try tree.checkpointImage("the original")
        let stopped = tree.stopAll()
        #expect(stopped.allSatisfy { processState($0) == "T" }, "the original is stopped")
        let copy = try ProcessTree(restoring: image, like: tree)
        for round in 1...2 {
            let log = copy.restartLog()
            #expect(([tree.root] + tree.descendants).contains { log.contains("stasis: PID \($0) (tree-session) is in use; restored in a new PID namespace") },
                    "round \(round): the line names a PID the stopped original holds: \(log)")
            let initPID = try #require(copy.namespaceInit)
            #expect(namespaceOf(initPID, "user") == namespaceOf(getpid(), "user"), "round \(round): root's own user namespace")
            expectUntouched(tree, "round \(round)", state: "T")
            if round == 2 { break }
            usleep(300_000)
            let again = try copy.checkpointImage("the copy in its namespace")
            try copy.killAll()
            try copy.restart(again)
        }
        try copy.expectPass("PASS session")
        for pid in stopped { kill(pid, SIGCONT) }
        try tree.expectPass("PASS session")
        #expect(occurrences("PASS session", in: tree.text) == 2, "both PASS: \(tree.text)")
    }

    /// (4) A tree whose member fails inside the namespace (its page data damaged; --eager finds it): exit 3
    /// naming the member's image, no --pid-file, and nothing left: `stasis restart` runs under a child
    /// subreaper (Tests/Fixtures/subreaper), which every process it started and that outlived it (the
    /// namespace's init, a member, a zombie nobody reaped) would become the child of. The original,
    /// running beside with the same PIDs, is untouched.
    @Test(.timeLimit(.minutes(3))) func aTreeThatFailsInItsNamespaceLeavesNothingBehind() throws {
        let scratch = Self.sharedScratch()
        let binary = try compileFixture("tree-zombie", into: scratch.path)
        let subreaper = try compileFixture("subreaper", into: scratch.path)
        let tree = try ProcessTree([binary], scratch: scratch, runAs: Self.asNobody, newSession: true)
        try tree.waitForReady()
        let image = try tree.checkpointImage("the original")
        let victim = tree.descendants[1]  // the running child: the root and the zombie are made first
        let victimImage = image + "/\(victim).stasis"
        var bytes = try readBytes(victimImage)
        let decoded = try Image.decode(from: ByteArraySource(bytes))
        let area = try #require(decoded.memoryAreas.first { $0.dataBytes > 0 && $0.flags.contains(.anonymous) })
        bytes[Int(area.dataOffset) + 10] ^= 0xff
        try writeBytes(bytes, to: victimImage)

        let pidFile = scratch.file("failed.pid")
        let log = scratch.file("failed.log")
        let command = Self.asNobody + [Stasis.launcher, "restart", "--eager", "--pid-file", pidFile, image]
        let end = try ChildProcess(subreaper, command, outputPath: log).wait(seconds: 60)
        let text = (try? String(contentsOfFile: log)) ?? ""
        #expect(end == .exited(3), "\(text)")
        #expect(text.contains("\(victim).stasis is damaged"), "the member is named: \(text)")
        // It failed inside a namespace (the original holds the PIDs, and uid 65534 cannot choose them on the
        // host); the line saying where a tree came back is said only once it is back.
        #expect(!text.contains("restored in a new PID namespace"), "a failed restore claims no success: \(text)")
        #expect(access(pidFile, F_OK) != 0, "no --pid-file")
        #expect(text.contains("SUBREAPER left 0") && !text.contains("LEFT"), "nothing outlives the restart: \(text)")
        expectUntouched(tree, "after the failed restart")
        try tree.expectPass("PASS zombie")
    }

    // ---- helpers ----------------------------------------------------------------------------------------

    /// The original tree is still there on the host, as it was: the same processes (start times), in our
    /// PID namespace alone, running (or in `state`); its zombies still zombies.
    private func expectUntouched(_ tree: ProcessTree, _ when: String, state: String? = nil,
                                 sourceLocation: SourceLocation = #_sourceLocation) {
        for pid in [tree.root] + tree.descendants {
            let now = processState(pid) ?? "gone"
            let same = tree.started[pid] != nil && startTime(pid) == tree.started[pid]
            let fine: Bool
            if now == "Z" {
                fine = pid != tree.root  // a READY zombie stays one
            } else if let state {
                fine = now == state
            } else {
                fine = now != "gone" && now != "T"
            }
            #expect(same && fine && namespacePIDs(pid) == [pid], "\(when): the original's process \(pid) is \(now)",
                    sourceLocation: sourceLocation)
        }
    }
}

/// /proc/PID/status as NAME → value (tabs inside the value kept).
func statusFields(_ pid: pid_t) -> [String: String] {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status") else { return [:] }
    var fields: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: "\t ")
    }
    return fields
}

func occurrences(_ needle: String, in text: String) -> Int {
    text.split(separator: "\n").filter { $0.contains(needle) }.count
}
