import Glibc
import Testing

/// Descriptors whose other side is outside the job, or that another user created (issue 11).
@Suite(.serialized, .enabled(if: Stasis.isBuilt && getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0,
                             "needs root to create the pipes and act as an ordinary user"))
struct ForeignPipeTests {
    static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    /// A root shell pipes an ordinary user's program: fd 3 writes into root's pipe (reader outside),
    /// fd 4 reads root's pipe (writer outside). The checkpoint must succeed; the bytes the outside reader
    /// has not read yet reach it exactly once; the bytes waiting for the program come back to it. Also fd 5,
    /// a 0600 file of root's deleted while open (the program can read its fd, not open the file again).
    @Test func pipesAnotherUserCreatedAreCheckpointedAndNothingIsDuplicated() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o755)
        let binary = try compileFixture("foreign-pipes", into: scratch.path)
        let images = scratch.file("images")
        mkdir(images, 0o755)
        chown(images, 65534, 65534)
        let output = scratch.file("out"), pidFile = images + "/run.pid", go = scratch.file("go")
        let received = scratch.file("received"), log = scratch.file("restart.log")
        try "".write(toFile: output)
        chown(output, 65534, 65534)
        let rootFile = scratch.file("root-file")
        try "root-data".write(toFile: rootFile)
        chmod(rootFile, 0o600)
        let nobody = Self.asNobody.joined(separator: " ")
        let script = """
            printf HELLO-IN | \(nobody) '\(Stasis.launcher)' run --dir '\(images)' --pid-file '\(pidFile)' -- '\(binary)' \
            3>&1 4<&0 5<>'\(rootFile)' 0</dev/null >'\(output)' 2>&1 | (while [ ! -e '\(go)' ]; do sleep 0.05; done; cat > '\(received)')
            """
        let shell = try ChildProcess("/bin/sh", ["-c", script], outputPath: scratch.file("sh.log"))
        var pids: [pid_t] = []
        defer {  // whatever failed: the program (original or restored) dies, the reader reads and ends
            for pid in pids { kill(pid, SIGKILL) }
            try? "".write(toFile: go)
            _ = try? shell.wait(seconds: 30)
        }
        try waitUntil("READY", seconds: 60) { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        try #require(pid > 0)
        pids.append(pid)
        unlink(rootFile)
        let (code, text) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
        try #require(code == 0, "checkpoint of a program writing into root's pipe: \(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        kill(pid, SIGKILL)
        let restoredPID = images + "/restored.pid"
        let restart = try ChildProcess(Self.asNobody[0], Array(Self.asNobody.dropFirst()) + [Stasis.launcher, "restart", "--pid-file", restoredPID, image], outputPath: log)
        defer { restart.killAndReap() }
        try waitUntil("restored pid", seconds: 60) { access(restoredPID, R_OK) == 0 || !ChildRegistry.shared.contains(restart.pid) }
        let restored = pid_t(((try? String(contentsOfFile: restoredPID)) ?? "").trimmingCharacters(in: "\n")) ?? -1
        try #require(restored > 0, "restart: \((try? String(contentsOfFile: log)) ?? "")")
        pids.append(restored)
        kill(restored, SIGTERM)
        #expect(try restart.wait() == .exited(0), "\((try? String(contentsOfFile: log)) ?? "")")
        let result = try String(contentsOfFile: output)
        #expect(result.contains("PASS"), "\(result)")
        try "".write(toFile: go)
        _ = try shell.wait(seconds: 60)
        #expect((try String(contentsOfFile: received)) == "OUT-BYTES\n", "the outside reader gets its bytes once")
    }
}

/// The same mistake with a named FIFO: the program writes into a FIFO that a process outside holds
/// open and has not read yet. Those bytes stay in the FIFO after the program is killed: a restart must
/// not send them again.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct ForeignFIFOTests {
    @Test func bytesWrittenIntoAnOutsideFIFOReachItsReaderOnce() throws {
        let scratch = Scratch()
        let binary = try compileFixture("foreign-pipes", into: scratch.path)
        let fifo = scratch.file("fifo"), go = scratch.file("go"), received = scratch.file("received")
        let output = scratch.file("out"), pidFile = scratch.file("run.pid"), rootFile = scratch.file("root-file")
        try #require(mkfifo(fifo, 0o600) == 0)
        try "root-data".write(toFile: rootFile)
        let reader = try ChildProcess("/bin/sh", ["-c", "exec 3<>'\(fifo)'; while [ ! -e '\(go)' ]; do sleep 0.05; done; timeout 5 cat <&3 > '\(received)'"],
                                      outputPath: scratch.file("reader.log"))
        let shell = try ChildProcess("/bin/sh", ["-c", "printf HELLO-IN | '\(Stasis.launcher)' run --dir '\(scratch.path)' --pid-file '\(pidFile)' -- '\(binary)' 3>'\(fifo)' 4<&0 5<>'\(rootFile)' 0</dev/null >'\(output)' 2>&1"],
                                     outputPath: scratch.file("sh.log"))
        var pids: [pid_t] = []
        defer {
            for pid in pids { kill(pid, SIGKILL) }
            try? "".write(toFile: go)
            _ = try? reader.wait(seconds: 30)
            shell.killAndReap()
        }
        try waitUntil("READY", seconds: 60) { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        try #require(pid > 0)
        pids.append(pid)
        unlink(rootFile)
        let (code, text) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        kill(pid, SIGKILL)
        _ = try shell.wait(seconds: 30)
        let restoredPID = scratch.file("restored.pid"), log = scratch.file("restart.log")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", restoredPID, image], outputPath: log)
        try waitUntil("restored pid", seconds: 60) { access(restoredPID, R_OK) == 0 || !ChildRegistry.shared.contains(restart.pid) }
        let restored = pid_t(((try? String(contentsOfFile: restoredPID)) ?? "").trimmingCharacters(in: "\n")) ?? -1
        try #require(restored > 0, "restart: \((try? String(contentsOfFile: log)) ?? "")")
        pids.append(restored)
        kill(restored, SIGTERM)
        #expect(try restart.wait() == .exited(0), "\((try? String(contentsOfFile: log)) ?? "")")
        #expect((try String(contentsOfFile: output)).contains("PASS"))
        try "".write(toFile: go)
        _ = try reader.wait(seconds: 60)
        #expect((try String(contentsOfFile: received)) == "OUT-BYTES\n", "the FIFO's reader gets the bytes once")
    }
}

/// `stasis restart --fd N=PATH` and `--fd N=inherit` (issue 10): a log file moved or rotated away no longer
/// blocks a restart for good.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct DescriptorOverrideTests {
    @Test func aRotatedLogIsReplacedWithFdPathOrInherit() throws {
        let scratch = Scratch()
        let binary = try compileFixture("log-writer", into: scratch.path)
        let log = scratch.file("job.log")
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: log)
        try waitUntil("READY") { ((try? String(contentsOfFile: log)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        program.killAndReap()
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        #expect(rename(log, log + ".1") == 0)  // rotated

        let refused = try Stasis.run(["restart", image], in: scratch.path)
        #expect(refused.code == 5 && refused.output.contains("--fd 1=PATH"), "\(refused.output)")
        #expect(refused.output.split(separator: "\n").count == 1, "\(refused.output)")
        for (arguments, expected) in [(["--fd", "1"], "N=PATH"), (["--fd", "x=/tmp/y"], "N=PATH"),
                                      (["--fd", "9=/tmp/y"], "no fd 9"), (["--fd", "1=a", "--fd", "1=b"], "twice"),
                                      (["--fd", "57=inherit"], "no fd 57")] {
            let bad = try Stasis.run(["restart"] + arguments + [image], in: scratch.path)
            #expect(bad.code == 2 && bad.output.contains(expected) && bad.output.split(separator: "\n").count == 1,
                    "\(arguments): \(bad.code) \(bad.output)")
        }
        let unopenable = try Stasis.run(["restart", "--fd", "1=" + scratch.file("no/such/dir/log"), image], in: scratch.path)
        #expect(unopenable.code == 5 && unopenable.output.split(separator: "\n").count == 1, "\(unopenable.output)")

        // --fd 1=PATH: stdout and stderr (one open file, 2>&1) go to the new log, still appending.
        let newLog = scratch.file("job.log.new")
        try "earlier\n".write(toFile: newLog)
        try restartAndFinish(image, ["--fd", "1=" + newLog], scratch, log: scratch.file("restart-1.log"))
        let written = try String(contentsOfFile: newLog)
        #expect(written == "earlier\nappend=1 shared=1\nstderr line\nPASS\n", "\(written)")
        #expect(!(try String(contentsOfFile: log + ".1")).contains("PASS"))

        // --fd 1=inherit: restart's own stdout (its log here).
        let restartLog = scratch.file("restart-2.log")
        try restartAndFinish(image, ["--fd", "1=inherit"], scratch, log: restartLog)
        let inherited = try String(contentsOfFile: restartLog)
        #expect(inherited.contains("append=1 shared=1\nstderr line\nPASS\n"), "\(inherited)")
    }

    private func restartAndFinish(_ image: String, _ options: [String], _ scratch: Scratch, log: String) throws {
        let pidFile = scratch.file("restored-\(UInt32.random(in: 0...UInt32.max)).pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile] + options + [image], outputPath: log)
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 || !ChildRegistry.shared.contains(restart.pid) }
        let pid = pid_t(((try? String(contentsOfFile: pidFile)) ?? "").trimmingCharacters(in: "\n")) ?? -1
        try #require(pid > 0, "restart \(options): \((try? String(contentsOfFile: log)) ?? "")")
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0), "\((try? String(contentsOfFile: log)) ?? "")")
    }
}

/// Files mapped MAP_SHARED (issue 5): a memfd with its descriptor and seals, a memfd whose only holders
/// are two mappings, a deleted file with its descriptor; three checkpoint/restart cycles.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SharedFileMappingTests {
    @Test func sharedMappingsOfMemfdsAndDeletedFilesStayOneFile() throws {
        let scratch = Scratch()
        let binary = try compileFixture("memfd-shared", into: scratch.path)
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles([binary, scratch.path], scratch: scratch, output: output)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let text = try String(contentsOfFile: output)
        #expect(text.contains("PASS") && !text.contains("FAIL"), "\(text)")
    }

    /// The same with incremental images: the areas' inherited pages are skipped like their own.
    @Test func sharedMappingsStayOneFileWithIncrementalImages() throws {
        let scratch = Scratch()
        let binary = try compileFixture("memfd-shared", into: scratch.path)
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles([binary, scratch.path], scratch: scratch, output: output,
                                                         runOptions: ["--incremental"])
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let text = try String(contentsOfFile: output)
        #expect(text.contains("PASS") && !text.contains("FAIL"), "\(text)")
    }
}

/// Bytes queued in a pseudo-terminal pair the program owns (issue 4): both directions, a canonical-mode
/// pair with a partial line and a raw-mode pair with control characters; three cycles.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct TerminalQueueTests {
    @Test func queuedBytesInBothDirectionsComeBack() throws {
        let scratch = Scratch()
        let binary = try compileFixture("pty-queues", into: scratch.path)
        let output = scratch.file("out")
        let (restart, pid) = try checkpointRestartCycles([binary], scratch: scratch, output: output)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        let text = try String(contentsOfFile: output)
        #expect(text.contains("PASS") && !text.contains("FAIL"), "\(text)")
    }
}
