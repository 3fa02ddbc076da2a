import Glibc
import Testing

/// The command line is a contract scripts depend on: what `ls`, `verify`, `inspect`, `checkpoint`,
/// `run` and `restart` print and exit with in the cases issue 11 found wrong.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct CommandLineTests {
    /// An image of the counter fixture (in `scratch`, or `--dir` among `runOptions`), the program
    /// killed and reaped: (image, binary, input file).
    func counterImage(_ scratch: Scratch, runOptions: [String] = []) throws -> (image: String, binary: String, input: String) {
        let binary = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let output = scratch.file("counter.out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path] + runOptions + ["--", binary, "1", input],
                                     outputPath: output, workingDirectory: scratch.path)
        defer { child.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        try #require(code == 0, "\(text)")
        return (text.split(separator: "\n").last.map(String.init) ?? "", binary, input)
    }

    func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    /// A damaged image is listed as CORRUPT with its file's real size, never as "pid 0 #0 1970-01-01"
    /// or "0 bytes" (text, --full, --json), and `verify --json` says why.
    @Test func lsShowsADamagedImageAsCorruptWithItsRealSize() throws {
        let scratch = Scratch()
        let (image, _, _) = try counterImage(scratch)
        let good = try readBytes(image)
        let directory = scratch.file("images")
        #expect(mkdir(directory, 0o700) == 0)
        var header = good
        header[30] ^= 0x10  // the header checksum no longer matches
        var page = good
        page[good.count / 2] ^= 0x10  // page data: only --full (every page's checksum) sees it
        try writeBytes(good, to: directory + "/good.stasis")
        try writeBytes(header, to: directory + "/header.stasis")
        try writeBytes(page, to: directory + "/page.stasis")
        try writeBytes([], to: directory + "/empty.stasis")
        let size = good.count

        var (code, text) = try Stasis.run(["ls", directory], in: scratch.path)
        #expect(code == 0, "\(text)")
        let plain = text.split(separator: "\n")
        #expect(plain.count == 4, "\(text)")
        for line in plain where line.hasPrefix("header.stasis") || line.hasPrefix("empty.stasis") {
            #expect(line.contains("CORRUPT") && !line.contains("pid 0") && !line.contains("1970"), "\(line)")
        }
        #expect(plain.contains { $0.hasPrefix("header.stasis") && $0.contains("  \(size) bytes") }, "\(text)")
        #expect(plain.contains { $0.hasPrefix("empty.stasis") && $0.contains("  0 bytes") && $0.contains("empty") }, "\(text)")
        #expect(plain.contains { $0.hasPrefix("page.stasis") && $0.hasSuffix("ok") }, "\(text)")

        (code, text) = try Stasis.run(["ls", "--full", directory], in: scratch.path)
        let full = text.split(separator: "\n")
        #expect(full.contains { $0.hasPrefix("page.stasis") && $0.contains("CORRUPT") && $0.contains("  \(size) bytes")
            && $0.contains("checksum") }, "\(text)")
        #expect(full.contains { $0.hasPrefix("good.stasis") && $0.contains("  \(size) bytes") && $0.hasSuffix("ok") }, "\(text)")

        (code, text) = try Stasis.run(["ls", "--full", "--json", directory], in: scratch.path)
        let json = text.split(separator: "\n")
        #expect(json.count == 4 && json.allSatisfy { $0.hasPrefix("{\"image\": ") && $0.hasSuffix("}") }, "\(text)")
        for line in json where !line.contains("good.stasis") {
            #expect(line.contains("\"ok\": false") && line.contains("\"error\": \""), "\(line)")
        }
        #expect(json.contains { $0.contains("page.stasis") && $0.contains("\"size\": \(size),") }, "\(text)")

        (code, text) = try Stasis.run(["verify", "--json", directory + "/page.stasis"], in: scratch.path)
        #expect(code == 3 && text.contains("\"ok\": false") && text.contains("checksum"), "\(text)")
    }

    /// An empty file is called empty, not "truncated (ends before byte 0)".
    @Test func anEmptyImageIsCalledEmpty() throws {
        let scratch = Scratch()
        let path = scratch.file("empty.stasis")
        try writeBytes([], to: path)
        for command in [["restart"], ["verify"], ["inspect"]] {
            let (code, text) = try Stasis.run(command + [path], in: scratch.path)
            #expect(code == 3 && text.contains("empty") && !text.contains("byte 0"), "\(command): \(text)")
            #expect(text.split(separator: "\n").count == 1, "\(command): \(text)")
        }
    }

    /// `--allow-changed-files`: one warning per changed file (the executable is mapped four or five
    /// times), saying what changed: here only the modification time, not "size N -> N".
    @Test func aChangedFileIsWarnedAboutOnceSayingWhatChanged() throws {
        let scratch = Scratch()
        let (image, binary, _) = try counterImage(scratch)
        #expect(system("touch -d '2001-01-01 00:00:00' '\(binary)'") == 0)  // mtime only
        let refused = try Stasis.run(["restart", image], in: scratch.path)
        #expect(refused.code == 5 && refused.output.split(separator: "\n").count == 1, "\(refused.output)")
        let pidFile = scratch.file("restored.pid")
        let log = scratch.file("restart.log")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--allow-changed-files", "--pid-file", pidFile, image],
                                       outputPath: log)
        defer { restart.killAndReap() }
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 || !ChildRegistry.shared.contains(restart.pid) }
        let pid = pid_t(((try? String(contentsOfFile: pidFile)) ?? "").trimmingCharacters(in: "\n")) ?? -1
        #expect(pid > 0)
        if pid > 0 { kill(pid, SIGTERM) }
        #expect(try restart.wait() == .exited(0))
        let warnings = try String(contentsOfFile: log).split(separator: "\n").filter { $0.contains(binary) }
        #expect(warnings.count == 1, "\(warnings)")
        #expect(warnings.allSatisfy { $0.contains("modified at 2001-01-01") && !$0.contains(" -> ") }, "\(warnings)")
    }

    /// A process this caller may not inspect is a permission problem (10), not a missing one (6).
    @Test func checkpointOfAProcessWeMayNotInspectIsPermissionDenied() throws {
        let scratch = Scratch()
        // PID 1 here: root may not read its maps either (another user namespace's, or not dumpable);
        // where root may, PID 1 is simply not under stasis (6).
        let readable = fopen("/proc/1/maps", "r").map { fclose($0); return true } ?? false
        let (code, text) = try Stasis.run(["checkpoint", "1"], in: scratch.path)
        #expect(code == (getuid() == 0 && readable ? 6 : 10) && text.split(separator: "\n").count == 1, "\(text)")
        var st = stat()
        // As uid 65534, root's PID 1 is another user's process.
        guard stat("/usr/bin/setpriv", &st) == 0, getuid() == 0 else { return }
        let log = scratch.file("nobody.log")
        #expect(chmod(scratch.path, 0o777) == 0)
        let child = try ChildProcess("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups",
                                                          Stasis.launcher, "checkpoint", "1"], outputPath: log)
        let termination = try child.wait()
        let nobodyText = (try? String(contentsOfFile: log)) ?? ""
        #expect(termination == .exited(10), "\(nobodyText)")
        #expect(nobodyText.hasPrefix("stasis: ") && nobodyText.split(separator: "\n").count == 1, "\(nobodyText)")
    }

    /// `inspect` shows when the image was taken as a date, and that it is signed.
    @Test func inspectAndVerifyShowTheDateAndTheSignature() throws {
        let scratch = Scratch()
        let key = scratch.file("key")
        try "a secret key".write(toFile: key)
        let (image, _, _) = try counterImage(scratch, runOptions: ["--key", key])
        var (code, text) = try Stasis.run(["inspect", image], in: scratch.path)
        #expect(code == 0, "\(text)")
        let taken = text.split(separator: "\n").first { $0.hasPrefix("pid:") } ?? ""
        #expect(taken.contains("taken at 20") && taken.hasSuffix("Z") && !taken.contains("unix"), "\(taken)")
        #expect(text.contains("signed"), "\(text.prefix(300))")
        (code, text) = try Stasis.run(["inspect", "--json", image], in: scratch.path)
        #expect(code == 0 && text.contains("\"signed\": true"), "\(text.prefix(300))")
        // Without --key verify cannot check the signature, but says there is one.
        (code, text) = try Stasis.run(["verify", image], in: scratch.path)
        #expect(code == 0 && text.contains("signed") && text.contains("--key"), "\(text)")
        (code, text) = try Stasis.run(["verify", "--json", image], in: scratch.path)
        #expect(code == 0 && text.contains("\"signed\": true") && text.contains("\"signature_checked\": false"), "\(text)")
        (code, text) = try Stasis.run(["verify", "--key", key, image], in: scratch.path)
        #expect(code == 0 && text.contains("signature ok"), "\(text)")
    }

    /// Each command's usage line names every option its help describes.
    @Test(arguments: ["run", "checkpoint", "restart", "inspect", "verify", "ls", "compact"])
    func everyOptionOfAHelpIsInItsUsageLine(command: String) throws {
        let scratch = Scratch()
        let (code, text) = try Stasis.run([command, "--help"], in: scratch.path)
        #expect(code == 0, "\(text)")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let usage = lines.prefix { $0.contains { $0 != " " } }.joined(separator: " ")
        for line in lines.dropFirst() {
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("--"), line.count - trimmed.count <= 4 else { continue }
            let option = trimmed.prefix { $0 != " " && $0 != "," }
            #expect(usage.contains("[" + option) || usage.contains("| " + option) || usage.contains(" " + option + " "),
                    "\(command): \(option) missing from: \(usage)")
        }
    }

    /// `--dir` that does not exist is created (0700, with missing parents), by `run` and `checkpoint`.
    @Test func aMissingImageDirectoryIsCreated() throws {
        let scratch = Scratch()
        let binary = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let output = scratch.file("counter.out")
        let runDirectory = scratch.file("new/images")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", runDirectory, "--", binary, "1", input],
                                     outputPath: output, workingDirectory: scratch.path)
        defer { child.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        var st = stat()
        #expect(stat(runDirectory, &st) == 0 && st.st_mode & 0o7777 == 0o700)
        var (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        #expect(code == 0 && text.hasPrefix(runDirectory + "/"), "\(text)")
        let checkpointDirectory = scratch.file("other")
        (code, text) = try Stasis.run(["checkpoint", "--dir", checkpointDirectory, String(child.pid)], in: scratch.path)
        #expect(code == 0 && text.hasPrefix(checkpointDirectory + "/"), "\(text)")
        #expect(stat(checkpointDirectory, &st) == 0 && st.st_mode & 0o7777 == 0o700)
        // A path through a regular file cannot be created: one line, usage.
        (code, text) = try Stasis.run(["checkpoint", "--dir", input + "/sub", String(child.pid)], in: scratch.path)
        #expect(code == 2 && text.split(separator: "\n").count == 1 && text.contains(input), "\(text)")
    }

    /// The `--interval` watcher writes nothing into the program's stderr once the program was killed,
    /// even while it is a zombie its parent has not reaped yet.
    @Test func theIntervalWatcherIsQuietAfterTheProgramIsKilled() throws {
        let scratch = Scratch()
        let output = scratch.file("program.out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--interval", "1s", "--", "/bin/sleep", "600"],
                                     outputPath: output, workingDirectory: scratch.path)
        defer { child.killAndReap() }
        try waitUntil("a periodic image") { opendirNames(scratch.path).contains { $0.hasSuffix(".stasis") } }
        kill(child.pid, SIGKILL)
        usleep(2_500_000)  // a zombie for two intervals: the old watcher tried (and complained) meanwhile
        child.killAndReap()
        try waitUntil("the watcher to end") { !watcherRuns(for: child.pid) }
        let text = (try? String(contentsOfFile: output)) ?? ""
        #expect(!text.contains("stasis:"), "\(text)")
    }
}

/// Whether a `stasis __watch PID ...` process is still running.
func watcherRuns(for pid: pid_t) -> Bool {
    opendirNames("/proc").contains { name in
        guard Int32(name) != nil, let bytes = try? readBytes("/proc/\(name)/cmdline") else { return false }
        let words = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return words.count > 2 && words[1] == "__watch" && words[2] == String(pid)
    }
}
