import Glibc
import Testing

/// Process trees checkpointed and restarted whole (issue 13). Each case runs a self-verifying fixture
/// (Tests/Fixtures/tree-*) under `stasis run` and takes it through three cycles of checkpoint → SIGKILL of
/// every process → restart with the original PIDs (ProcessTree), then tells the root to verify (SIGTERM).
/// Restoring original PIDs needs root (CAP_CHECKPOINT_RESTORE); these tests run as root.
/// STASIS_TREE_TEST_CYCLES=0 checks the fixtures and the harness alone (cases a-j then take no checkpoint).
@Suite(.serialized, .enabled(if: Stasis.isBuilt && getuid() == 0, "needs `swift build` and root"))
struct ProcessTreeTests {
    /// (a) producer | filter | consumer, exec'd: both pipes are full at every checkpoint; the records go on
    /// with no byte lost or repeated.
    @Test(.timeLimit(.minutes(5))) func aPipelineOfThreeExecdProcessesKeepsTheDataInFlight() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-pipeline", into: scratch.path)], scratch: scratch)
        try tree.waitForReady()
        let (producer, filter) = (tree.descendants[0], tree.descendants[1])
        try tree.cycle(before: { cycle in
            try waitUntil("cycle \(cycle): both pipes full (producer and filter blocked writing)") {
                kernelWaitChannel(producer).contains("pipe_write") && kernelWaitChannel(filter).contains("pipe_write")
            }
        })
        try tree.expectPass("PASS pipeline")
    }

    /// (b) A zombie (exited 42, unreaped) and a running child: after restart the parent reaps both, 42
    /// and then 7 when told.
    @Test(.timeLimit(.minutes(5))) func aZombieAndARunningChildAreReapedWithTheirStatuses() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-zombie", into: scratch.path)], scratch: scratch)
        try tree.waitForReady()
        let zombie = tree.descendants[0]
        func isZombieOfRoot() -> Bool { procStat(zombie).map { $0[0] == "Z" && $0[1] == Substring(String(tree.root)) } ?? false }
        try tree.cycle(before: { cycle in #expect(isZombieOfRoot(), "cycle \(cycle): the zombie before the checkpoint") },
                       after: { cycle in #expect(isZombieOfRoot(), "cycle \(cycle): the zombie after the restart") })
        try tree.expectPass("PASS zombie")
    }

    /// (c) Parent and child append through one file offset (a regular file without O_APPEND, opened before
    /// fork): after restarts they still share it, and no record overwrites another.
    @Test(.timeLimit(.minutes(5))) func parentAndChildKeepOneSharedFileOffset() throws {
        let scratch = Scratch()
        let binary = try compileFixture("tree-offset", into: scratch.path)
        let tree = try ProcessTree([binary, scratch.file("shared.log")], scratch: scratch)
        try tree.waitForReady()
        try tree.cycle()
        try tree.expectPass("PASS offset")
    }

    /// (d) Two children in a process group of their own: kill(-pgid, SIGUSR1) after restart reaches both.
    @Test(.timeLimit(.minutes(5))) func aProcessGroupIsSignalledAsAGroupAfterRestart() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-pgroup", into: scratch.path)], scratch: scratch)
        try tree.waitForReady()
        try tree.cycle()
        try tree.expectPass("PASS pgroup")
    }

    /// (e) A setsid child with a grandchild in a group of its own: sid, pgid, ppid (and the grandchild's
    /// parent-death signal) as before.
    @Test(.timeLimit(.minutes(5))) func aSessionLeaderAndItsGrandchildKeepTheirIDs() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-session", into: scratch.path)], scratch: scratch)
        try tree.waitForReady()
        try tree.cycle()
        try tree.expectPass("PASS session")
    }

    /// (f) MAP_SHARED|MAP_ANONYMOUS memory and a POSIX shm region, each with a process-shared mutex: after
    /// restart one region, seen by both, and the mutexes still exclude.
    @Test(.timeLimit(.minutes(5))) func sharedMemoryAndProcessSharedMutexesStayShared() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-shm", into: scratch.path)], scratch: scratch)
        defer { unlink("/dev/shm/stasis-tree-\(tree.root)") }
        try tree.waitForReady()
        try tree.cycle()
        try tree.expectPass("PASS shm")
    }

    /// (g) A preforked server: two workers accept() on one listening socket; after every restart both
    /// answer on the same port.
    @Test(.timeLimit(.minutes(5))) func preforkedWorkersKeepAcceptingOnTheSharedSocket() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-server", into: scratch.path)], scratch: scratch)
        try tree.waitForReady()
        let port = try #require(tree.lines(startingWith: "PORT").first.flatMap { UInt16($0.dropFirst(5)) })
        func bothWorkersAnswer(_ when: String) {
            var answered = Set<pid_t>()
            for _ in 0..<12 {
                guard let answer = askServer(port: port) else { continue }
                let words = answer.split(separator: " ")  // worker K pid PID served N
                if words.count >= 4, let pid = pid_t(words[3]) { answered.insert(pid) }
            }
            #expect(answered == Set(tree.descendants), "\(when): the workers that answered: \(answered)")
        }
        bothWorkersAnswer("before the first checkpoint")
        try tree.cycle(after: { cycle in bothWorkersAnswer("after restart \(cycle)") })
        try tree.expectPass("PASS server")
    }

    /// (h) multiprocessing.Pool and ProcessPoolExecutor (fork context) sharing a multiprocessing.Value.
    @Test(.timeLimit(.minutes(5)), .enabled(if: pathOf("python3") != nil, "no python3"))
    func pythonPoolsAndASharedValueCarryOn() throws {
        let scratch = Scratch()
        let script = Stasis.packageRoot + "/Tests/Fixtures/tree-python/main.py"
        let tree = try ProcessTree(["python3", script], scratch: scratch)
        try tree.waitForReady(seconds: 120)
        try tree.cycle(settle: 500_000)
        try tree.expectPass("PASS python")
    }

    /// (i) bash with a background job and a background pipeline (seq blocked on a full pipe): after
    /// restarts `wait %1` reports the job's status and the pipeline delivers seq's exact bytes.
    @Test(.timeLimit(.minutes(5)), .enabled(if: access("/bin/bash", X_OK) == 0, "no bash"))
    func bashJobsAndABackgroundPipelineFinishWithTheirStatuses() throws {
        let scratch = Scratch()
        let tree = try ProcessTree(["/bin/bash", Stasis.packageRoot + "/Tests/Fixtures/tree-bash/main.sh"], scratch: scratch)
        try tree.waitForReady()
        let seq = tree.descendants[1]
        try tree.cycle(before: { cycle in
            try waitUntil("cycle \(cycle): seq blocked on the full pipe") { kernelWaitChannel(seq).contains("pipe_write") }
        })
        try tree.expectPass("PASS bash")
        #expect(tree.text.contains("statuses 143 4"), "\(tree.text)")
    }

    /// (j) `make -j2` of a generated project (each compile slowed by a sleeping wrapper), checkpointed in the
    /// middle of the build, finishes after the restarts with a binary that prints the right sum.
    @Test(.timeLimit(.minutes(10)), .enabled(if: pathOf("make") != nil && pathOf("cc") != nil, "no make or cc"))
    func makeJ2FinishesACorrectBuildAfterRestarts() throws {
        let scratch = Scratch()
        let project = scratch.file("project")
        let tree = try ProcessTree(["/bin/bash", Stasis.packageRoot + "/Tests/Fixtures/tree-make/main.sh", project], scratch: scratch)
        try tree.waitForReady()
        try tree.cycle(before: { cycle in
            #expect(access(project + "/prog", F_OK) != 0, "cycle \(cycle): the build is still going")
            #expect(!["Z", nil].contains(processState(tree.descendants[0])), "cycle \(cycle): make is running")
        })
        let end = try tree.parent.wait(seconds: 300)  // nothing to tell: the build ends by itself
        #expect(end == .exited(0), "\(tree.text)")
        #expect(tree.text.contains("PASS make 30") && !tree.text.contains("FAIL"), "\(tree.text)")
    }

    /// (k) 64 processes talking over pipes: 30 checkpoints in a row under load leave the job unaffected;
    /// then the last image is restarted once.
    @Test(.timeLimit(.minutes(15))) func sixtyFourProcessesTakeThirtyCheckpointsThenRestart() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-big", into: scratch.path)], scratch: scratch)
        try tree.waitForReady()
        try #require(tree.descendants.count == 63, "\(tree.text)")
        var image = ""
        for i in 1...30 {
            if !image.isEmpty { system("rm -rf '\(image)'") }  // keep the disk use flat
            image = try tree.checkpointImage("checkpoint \(i)")
            let gone = ([tree.root] + tree.descendants).filter { ["Z", nil].contains(processState($0)) }
            try #require(gone.isEmpty && !tree.text.contains("FAIL"), "after checkpoint \(i): ended \(gone); \(tree.text)")
        }
        try tree.killAll()
        try tree.restart(image)
        try tree.expectPass("PASS big 64 processes")
    }

    /// (l) Processes forking, exec'ing and exiting as fast as they can: each checkpoint succeeds or fails
    /// cleanly (a message, no crash, no image left), the job keeps running, and a good image restarts.
    @Test(.timeLimit(.minutes(10))) func checkpointsDuringAForkStormSucceedOrFailCleanly() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-forkstorm", into: scratch.path)], scratch: scratch)
        try tree.waitForReady()
        var images: [String] = []
        for attempt in 1...12 {
            usleep(UInt32.random(in: 10_000...150_000))
            let (code, text) = try tree.checkpoint()
            if code == 0 {
                images.append(text.split(separator: "\n").last.map(String.init) ?? "")
            } else {
                #expect(code < 128 && !text.isEmpty, "attempt \(attempt): stasis checkpoint exited \(code): \(text)")
            }
            let gone = ([tree.root] + tree.descendants).filter { ["Z", nil].contains(processState($0)) }
            try #require(gone.isEmpty && !tree.text.contains("FAIL"), "after attempt \(attempt): ended \(gone); \(tree.text)")
        }
        let left = opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.map { scratch.file($0) }
        #expect(Set(left) == Set(images), "the images are the successful checkpoints' only")
        let image = try #require(images.last, "no checkpoint of the fork storm succeeded")
        try tree.killAll()
        try tree.restart(image)
        try tree.expectPass("PASS forkstorm")
    }

    /// (m) A descendant exec'd without LD_PRELOAD has no agent: the checkpoint fails with one line naming
    /// its PID and command, and nothing is harmed (it is not sent the trigger, which would kill it).
    @Test(.timeLimit(.minutes(3))) func aDescendantWithoutTheAgentIsNamedAndTheJobGoesOn() throws {
        let scratch = Scratch()
        try expectRefusedForADescendantWithoutTheAgent([try compileFixture("tree-noagent", into: scratch.path)],
                                                       command: "sleep", scratch: scratch)
    }

    /// (m, static) The same for a static program exec'd with LD_PRELOAD still set: it ignores the agent,
    /// and starts with the trigger blocked (the exec wrapper blocked it for the agent that never came).
    @Test(.timeLimit(.minutes(3))) func aStaticDescendantIsNamedAndTheJobGoesOn() throws {
        let scratch = Scratch()
        let binary = try compileFixture("tree-noagent", into: scratch.path)
        let sleeper = scratch.file("static-sleeper")
        let source = Stasis.packageRoot + "/Tests/Fixtures/tree-noagent/main.c"
        try #require(system("cc -static -O1 -DTREE_STATIC_SLEEPER -o '\(sleeper)' '\(source)'") == 0, "cc -static")
        try expectRefusedForADescendantWithoutTheAgent([binary, sleeper], command: "static-sleeper", scratch: scratch)
    }

    private func expectRefusedForADescendantWithoutTheAgent(_ arguments: [String], command: String, scratch: Scratch) throws {
        let tree = try ProcessTree(arguments, scratch: scratch)
        try tree.waitForReady()
        let child = tree.descendants[0]
        for attempt in 1...2 {
            let (code, text) = try tree.checkpoint()
            let lines = text.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
            #expect(code != 0, "attempt \(attempt): \(text)")
            #expect(lines.count == 1 && text.contains(String(child)) && text.contains(command),
                    "attempt \(attempt): one line naming PID \(child) (\(command)): \(text)")
            #expect(processState(tree.root) != "Z" && processState(child) != "Z", "attempt \(attempt): the job goes on")
        }
        #expect(opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.isEmpty, "no image left behind")
        try tree.expectPass("PASS noagent")
    }

    /// (n) An ordinary user restoring a tree whose PIDs are still taken (the tree runs on), without a PID
    /// namespace (--no-namespace): one line naming a taken PID, a non-zero exit, and the running tree is
    /// untouched. (PIDNamespaceTreeTests restores it in a namespace.)
    @Test(.timeLimit(.minutes(3)), .enabled(if: access("/usr/bin/setpriv", X_OK) == 0, "no setpriv"))
    func anOrdinaryUserIsRefusedATreeWhosePIDsAreTaken() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o777)
        let binary = try compileFixture("tree-pgroup", into: scratch.path)
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        let tree = try ProcessTree([binary], scratch: scratch, runAs: asNobody)
        try tree.waitForReady()
        let image = try tree.checkpointImage("the checkpoint of uid 65534's tree")
        let log = scratch.file("refused.log")
        let restart = try ChildProcess(asNobody[0], Array(asNobody.dropFirst()) + [Stasis.launcher, "restart", "--no-namespace", image],
                                       outputPath: log)
        let end = try restart.wait(seconds: 60)
        let text = (try? String(contentsOfFile: log)) ?? ""
        let lines = text.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
        #expect(end != .exited(0), "\(text)")
        #expect(lines.count == 1 && ([tree.root] + tree.descendants).contains { text.contains(String($0)) },
                "one line naming a taken PID of \([tree.root] + tree.descendants): \(text)")
        try tree.expectPass("PASS pgroup")
    }
}

/// One request to tree-server: its answer line ("worker K pid PID served N"), nil if none came.
private func askServer(port: UInt16) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0, write(fd, "hello\n", 6) == 6 else { return nil }
    var answer: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 256)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        answer += buffer[0..<n]
    }
    return answer.isEmpty ? nil : String(decoding: answer, as: UTF8.self).trimmingCharacters(in: "\n")
}

/// The first NAME in PATH that is executable.
func pathOf(_ name: String) -> String? {
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
}
