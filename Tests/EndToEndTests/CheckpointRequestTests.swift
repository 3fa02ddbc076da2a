import Glibc
import Testing

/// The `stasis checkpoint` request protocol (Docs/ARCHITECTURE.md 2.6): concurrent requests, requests
/// by root for another user, and requests that reach a process before (or without) its agent's handler.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct CheckpointRequestTests {
    /// Six `stasis checkpoint` at once, twice, on a program whose copy-on-write writer takes a while:
    /// every request gets its own image, numbered without gaps, and the program still verifies.
    @Test(.timeLimit(.minutes(5))) func concurrentRequestsEachGetTheirOwnImage() throws {
        let scratch = Scratch()
        let binary = try compileFixture("heap-holder", into: scratch.path)
        let output = scratch.file("out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, "256"], outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY", seconds: 60) { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        var images: [String] = []
        for round in 1...2 {
            let requests = try (0..<6).map { i in
                // Round 2 mixes in-place writers with copy-on-write ones.
                let options = round == 2 && i % 2 == 1 ? ["--no-fork"] : []
                return (try ChildProcess(Stasis.launcher, ["checkpoint"] + options + [String(program.pid)],
                                         outputPath: scratch.file("request-\(round)-\(i).log")), scratch.file("request-\(round)-\(i).log"))
            }
            for (request, log) in requests {
                let status = try request.wait(seconds: 240)
                let text = (try? String(contentsOfFile: log)) ?? ""
                #expect(status == .exited(0), "round \(round): \(text)")
                if let path = text.split(separator: "\n").last, path.hasSuffix(".stasis") { images.append(String(path)) }
            }
        }
        #expect(Set(images).count == 12, "\(images)")
        let sequences = Set(images.compactMap { path in
            path.split(separator: "-").last.flatMap { Int($0.prefix { $0.isNumber }) }
        })
        #expect(sequences == Set(1...12), "sequence numbers: \(sequences.sorted())")
        #expect(kill(program.pid, 0) == 0, "the program keeps running")
        program.send(SIGTERM)
        #expect(try program.wait() == .exited(0))
        #expect((try String(contentsOfFile: output)).contains("PASS"))
        // The newest image restores.
        let newest = try #require(images.max())
        let (code, text) = try Stasis.run(["verify", newest], in: scratch.path)
        #expect(code == 0, "\(text)")
    }

    /// A trigger sent before the agent has installed its handler would kill the program (SIGUSR2's
    /// default action). `stasis checkpoint` right after `stasis run` waits for the handler; one that
    /// never comes (removed with a raw system call) is an error, and the program lives on.
    @Test(.timeLimit(.minutes(3))) func aRequestNeverKillsAProgramWithoutTheHandler() throws {
        let scratch = Scratch()
        let binary = try compileFixture("heap-holder", into: scratch.path)
        let output = scratch.file("out")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, "1", "reset"], outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(code == 6, "\(text)")
        #expect(text.contains("no handler for signal 12"), "\(text)")
        usleep(200_000)
        #expect(kill(program.pid, 0) == 0, "the program was not killed")
        program.send(SIGTERM)
        #expect(try program.wait() == .exited(0))

        // Checkpoints asked for the moment the program starts.
        for attempt in 1...5 {
            let log = scratch.file("early-\(attempt).out")
            let early = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, "1"], outputPath: log)
            defer { early.killAndReap() }
            let (code, text) = try Stasis.run(["checkpoint", String(early.pid)], in: scratch.path)
            #expect(code == 0, "attempt \(attempt): \(text)")
            try waitUntil("READY") { ((try? String(contentsOfFile: log)) ?? "").contains("READY") }
            early.send(SIGTERM)
            #expect(try early.wait() == .exited(0), "attempt \(attempt): \((try? String(contentsOfFile: log)) ?? "")")
        }
    }

    /// Root checkpoints an ordinary user's process; the user's own checkpoints still work afterwards,
    /// and a directory in /tmp with the old fixed name (taken first by root, as another user could)
    /// changes nothing.
    @Test(.timeLimit(.minutes(3)), .enabled(if: getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0,
                                            "needs root to switch to an ordinary user"))
    func rootCheckpointsAnotherUsersProcessWithoutLockingThemOut() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o777)
        let binary = try compileFixture("heap-holder", into: scratch.path)
        let output = scratch.file("out")
        try "".write(toFile: output)
        chown(output, 65534, 65534)
        let squat = "/tmp/stasis-65534"
        let squatted = mkdir(squat, 0o700) == 0
        defer { if squatted { rmdir(squat) } }
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups"]
        let program = try ChildProcess("/usr/bin/setpriv", asNobody + [Stasis.launcher, "run", "--dir", scratch.path, "--", binary, "4"],
                                       outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (rootCode, rootText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(rootCode == 0, "root: \(rootText)")
        let userLog = scratch.file("user.log")
        let user = try ChildProcess("/usr/bin/setpriv", asNobody + [Stasis.launcher, "checkpoint", String(program.pid)], outputPath: userLog)
        #expect(try user.wait(seconds: 120) == .exited(0), "uid 65534: \((try? String(contentsOfFile: userLog)) ?? "")")
        // Each request removes its directory (other tests' requests may be in flight: wait a little).
        #expect((try? waitUntil("no control directory of uid 65534", seconds: 20) { controlDirectories(uid: 65534).isEmpty }) != nil,
                "\(controlDirectories(uid: 65534))")
        program.send(SIGTERM)
        #expect(try program.wait() == .exited(0))
    }

    /// /tmp/stasis-UID-TOKEN directories of requests for processes of `uid`.
    private func controlDirectories(uid: uid_t) -> [String] {
        opendirNames("/tmp").filter { name in
            let parts = name.split(separator: "-")
            return parts.count == 3 && parts[0] == "stasis" && parts[1] == "\(uid)" && UInt64(parts[2], radix: 16) != nil
        }
    }
}
