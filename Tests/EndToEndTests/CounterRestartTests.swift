import Glibc
import Testing

/// End to end through every part: `stasis run` a self-verifying C fixture, checkpoint it, SIGKILL it,
/// `stasis restart` the image, SIGTERM the restored process, and expect the fixture's own PASS.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct CounterRestartTests {
    /// Starts the counter fixture under `stasis run` and waits for READY.
    func startCounter(_ scratch: Scratch, mebibytes: Int, extra: [String] = []) throws -> (ChildProcess, String) {
        let binary = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let output = scratch.file("counter.out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path] + extra + ["--", binary, String(mebibytes), input],
                                     outputPath: output, workingDirectory: scratch.path)
        try waitUntil("READY from the fixture") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        return (child, output)
    }

    func checkpoint(_ pid: pid_t, _ scratch: Scratch) throws -> String {
        let (code, output) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
        #expect(code == 0, "stasis checkpoint failed: \(output)")
        let image = output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(image.hasSuffix(".stasis") && access(image, R_OK) == 0, "no image path in: \(output)")
        return image
    }

    /// Restarts `image`, returning the launcher child and the restored PID (from --pid-file).
    func restart(_ image: String, _ scratch: Scratch, log: String) throws -> (ChildProcess, pid_t) {
        let pidFile = scratch.file("restored-\(UInt32.random(in: 0...UInt32.max)).pid")
        let child = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image],
                                     outputPath: scratch.file(log), workingDirectory: scratch.path)
        try waitUntil("the restored PID", seconds: 60) {
            access(pidFile, R_OK) == 0 || ChildRegistry.shared.contains(child.pid) == false
        }
        let text = (try? String(contentsOfFile: pidFile)) ?? ""
        guard let pid = pid_t(text.trimmingCharacters(in: "\n")) else {
            throw TestFailure("restart wrote no pid: \((try? String(contentsOfFile: scratch.file(log))) ?? "")")
        }
        return (child, pid)
    }

    /// Both ways of writing: the default copy-on-write child, and in place (--no-fork).
    @Test(arguments: [[], ["--no-fork"]])
    func restoredCounterVerifiesItsMemoryRegistersFilesAndSignals(mode: [String]) throws {
        let scratch = Scratch()
        let (original, output) = try startCounter(scratch, mebibytes: 64, extra: mode)
        usleep(UInt32.random(in: 50_000...400_000))  // a random moment
        let image = try checkpoint(original.pid, scratch)
        original.killAndReap()

        let (launcher, pid) = try restart(image, scratch, log: "restart.log")
        usleep(200_000)
        kill(pid, SIGTERM)
        let termination = try launcher.wait()
        let text = try String(contentsOfFile: output)
        #expect(termination == .exited(0), "restart log: \((try? String(contentsOfFile: scratch.file("restart.log"))) ?? "")")
        #expect(text.contains("PASS"), "fixture output: \(text)")
        #expect(!text.contains("FAIL"), "fixture output: \(text)")
    }

    @Test func imageOfARestoredProcessRestoresAgain() throws {
        let scratch = Scratch()
        let (original, output) = try startCounter(scratch, mebibytes: 8)
        let first = try checkpoint(original.pid, scratch)
        original.killAndReap()

        let (launcher1, pid1) = try restart(first, scratch, log: "restart1.log")
        usleep(100_000)
        let second = try checkpoint(pid1, scratch)
        #expect(second != first)
        launcher1.send(SIGKILL)
        kill(pid1, SIGKILL)
        try launcher1.wait()

        let (launcher2, pid2) = try restart(second, scratch, log: "restart2.log")
        usleep(100_000)
        kill(pid2, SIGTERM)
        #expect(try launcher2.wait() == .exited(0))
        let text = try String(contentsOfFile: output)
        #expect(text.contains("PASS") && !text.contains("FAIL"), "fixture output: \(text)")
    }

    @Test func checkpointByKillSignalAloneAndSignalsForwardedByRestart() throws {
        let scratch = Scratch()
        let (original, output) = try startCounter(scratch, mebibytes: 4)
        original.send(SIGUSR2)
        var image = ""
        try waitUntil("an image from kill -USR2") {
            guard let dir = opendir(scratch.path) else { return false }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name.hasSuffix("-0001.stasis") { image = scratch.file(name) }
            }
            return !image.isEmpty
        }
        // The program keeps running after a checkpoint.
        #expect(kill(original.pid, 0) == 0)
        original.killAndReap()
        let (launcher, _) = try restart(image, scratch, log: "restart.log")
        usleep(100_000)
        launcher.send(SIGTERM)  // sent to `stasis restart`: forwarded to the program
        #expect(try launcher.wait() == .exited(0))
        let text = try String(contentsOfFile: output)
        #expect(text.contains("PASS") && !text.contains("FAIL"), "fixture output: \(text)")
    }
}

/// An ordinary user (no CAP_CHECKPOINT_RESTORE) who asks for no PID namespace (--no-namespace) gets a new
/// PID; glibc's cached TID is patched, so getpid-based and pthread-based code keeps working. (Without the
/// option the program comes back in a PID namespace with its own PID: PIDNamespaceTests.) Runs when the
/// suite runs as root (setpriv to 65534).
@Suite(.serialized, .enabled(if: Stasis.isBuilt && getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0,
                             "needs root to switch to an ordinary user"))
struct OrdinaryUserTests {
    @Test func ordinaryUserRestartsWithANewPID() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o777)
        let binary = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let output = scratch.file("counter.out")
        let log = scratch.file("restart.log")
        for file in [output, log] {
            try "".write(toFile: file)
            chown(file, 65534, 65534)
        }
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups"]
        let original = try ChildProcess("/usr/bin/setpriv", asNobody + [Stasis.launcher, "run", "--dir", scratch.path, "--",
                                                                       binary, "4", input], outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(original.pid)], in: scratch.path)
        #expect(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        original.killAndReap()
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess("/usr/bin/setpriv", asNobody + [Stasis.launcher, "restart", "--no-namespace", "--pid-file", pidFile, image],
                                       outputPath: log)
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        #expect(pid != original.pid)
        usleep(100_000)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS count") && result.contains("pid \(pid)"), "\(result)")
        let said = try String(contentsOfFile: log)
        #expect(said.contains("restored as PID \(pid) (thread ids are patched)") && !said.contains("namespace"), "\(said)")
    }
}

extension String {
    func write(toFile path: String) throws {
        guard let f = fopen(path, "w") else { throw TestFailure("cannot write \(path)") }
        fputs(self, f)
        fclose(f)
    }

    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
