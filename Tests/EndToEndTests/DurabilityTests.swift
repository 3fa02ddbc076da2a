import Glibc
import StasisImage
import Testing

/// Images users can trust: a killed checkpoint never damages the previous image; a full disk fails
/// cleanly; --keep removes old images only after a newer one is complete; images are 0600 and the
/// launcher refuses another user's.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct DurabilityTests {
    func startCounter(_ scratch: Scratch, mebibytes: Int, extra: [String] = [], directory: String? = nil)
        throws -> (ChildProcess, String)
    {
        let binary = scratch.file("counter")
        if access(binary, X_OK) != 0 { _ = try compileFixture("counter", into: scratch.path) }
        let input = scratch.file("input.txt")
        if access(input, F_OK) != 0 { try "12345678".write(toFile: input) }  // unchanged, or restart refuses it
        let output = scratch.file("counter-\(UInt32.random(in: 0...UInt32.max)).out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", directory ?? scratch.path] + extra
                                     + ["--", binary, String(mebibytes), input], outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        return (child, output)
    }

    func verifies(_ path: String) throws -> Bool {
        let (code, _) = try Stasis.run(["verify", path], in: "/tmp")
        return code == 0
    }

    /// SIGKILL at random moments of 200 checkpoint writes: the last good image always verifies, any
    /// published image is complete, and the last good one restores at the end.
    @Test func killDuringCheckpointNeverDamagesThePreviousImage() throws {
        let scratch = Scratch()
        var (program, _) = try startCounter(scratch, mebibytes: 32)
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        try #require(code == 0, "\(text)")
        let good = text.split(separator: "\n").last.map(String.init) ?? ""
        var published = 0
        for i in 0..<200 {
            program.send(SIGUSR2)
            usleep(UInt32.random(in: 0...60_000))
            program.killAndReap()
            try #require(try verifies(good), "iteration \(i): the previous image no longer verifies")
            for name in opendirNames(scratch.path) where name.hasSuffix(".stasis") && scratch.file(name) != good {
                #expect(try verifies(scratch.file(name)), "iteration \(i): a published image is incomplete: \(name)")
                unlink(scratch.file(name))
                published += 1
            }
            if i < 199 { (program, _) = try startCounter(scratch, mebibytes: 32) }
        }
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, good],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 || !ChildRegistry.shared.contains(restart.pid) }
        let pid = pid_t(((try? String(contentsOfFile: pidFile)) ?? "").trimmingCharacters(in: "\n")) ?? -1
        try #require(pid > 0, "restart failed: \((try? String(contentsOfFile: scratch.file("restart.log"))) ?? "")")
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        print("kill-during-checkpoint: 200 kills, \(published) of them after the image was published (all verified)")
    }

    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func fullDiskFailsCleanlyAndKeepsThePreviousImage() throws {
        let scratch = Scratch()
        let disk = scratch.file("small")
        mkdir(disk, 0o755)
        guard system("mount -t tmpfs -o size=3m tmpfs '\(disk)' 2>/dev/null") == 0 else {
            print("skipped: mount -t tmpfs is not permitted here")
            return
        }
        defer { _ = system("umount -l '\(disk)'") }
        let (program, _) = try startCounter(scratch, mebibytes: 1, directory: disk)
        defer { program.killAndReap() }
        let (code1, text1) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        try #require(code1 == 0, "\(text1)")
        let good = text1.split(separator: "\n").last.map(String.init) ?? ""
        // Fill the disk so that the next image cannot fit.
        _ = system("dd if=/dev/zero of='\(disk)/filler' bs=64k count=100 2>/dev/null")
        let (code2, text2) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(code2 == 7, "\(text2)")
        #expect(text2.contains("no space left on device") && text2.split(separator: "\n").count == 1, "\(text2)")
        #expect(kill(program.pid, 0) == 0, "the program keeps running")
        #expect(try verifies(good))
        let leftovers = opendirNames(disk).filter { $0.hasSuffix(".tmp") || ($0.hasSuffix(".stasis") && disk + "/" + $0 != good) }
        #expect(leftovers.isEmpty, "partial files: \(leftovers)")
    }

    @Test func keepRemovesOnlyOlderImagesOnceANewerOneIsComplete() throws {
        let scratch = Scratch()
        let (program, _) = try startCounter(scratch, mebibytes: 1, extra: ["--keep", "2"])
        defer { program.killAndReap() }
        var images: [String] = []
        for _ in 0..<5 {
            let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
            try #require(code == 0, "\(text)")
            images.append(text.split(separator: "\n").last.map(String.init) ?? "")
        }
        let present = images.filter { access($0, F_OK) == 0 }
        #expect(present == Array(images.suffix(2)), "present: \(present)")
        var st = stat()
        #expect(stat(images[4], &st) == 0 && st.st_mode & 0o777 == 0o600, "images are created 0600")
    }

    @Test(.enabled(if: getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0, "needs root to act as another user"))
    func anotherUsersImageIsRefused() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o755)
        let (program, _) = try startCounter(scratch, mebibytes: 1)
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        program.killAndReap()
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        chmod(image, 0o644)  // readable, but still root's
        let log = scratch.file("refused.log")
        try "".write(toFile: log)
        chown(log, 65534, 65534)
        let attempt = try ChildProcess("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                           Stasis.launcher, "restart", image], outputPath: log)
        #expect(try attempt.wait() == .exited(10))
        let message = try String(contentsOfFile: log)
        #expect(message.contains("only its owner or root") && message.split(separator: "\n").count == 1, "\(message)")
    }
}

/// --key: images signed with HMAC-SHA256; the key never lands in an image; restart refuses an image
/// that does not match, and a restored program goes on signing.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct SigningTests {
    @Test func signedImagesRestoreOnlyWithTheirKeyAndNeverContainIt() throws {
        let scratch = Scratch()
        let key = (0..<48).map { _ in UInt8.random(in: 0...255) }
        let keyFile = scratch.file("key"), otherKey = scratch.file("other-key")
        try writeBytes(key, to: keyFile)
        try writeBytes(Array("another key entirely".utf8), to: otherKey)
        let (program, output) = try DurabilityTests().startCounter(scratch, mebibytes: 2, extra: ["--key", keyFile])
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        program.killAndReap()
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        let bytes = try readBytes(image)
        #expect(!contains(bytes, key), "the key is in the image")

        #expect(try Stasis.run(["verify", "--key", keyFile, image], in: scratch.path).code == 0)
        let wrong = try Stasis.run(["verify", "--key", otherKey, image], in: scratch.path)
        #expect(wrong.code == 11 && wrong.output.contains("signature"), "\(wrong.output)")

        // Tampered, with its CRC resealed: only the signature can tell.
        var tampered = bytes
        tampered[48] ^= 0x01  // header: sequence
        resealHeader(&tampered)
        let tamperedPath = scratch.file("tampered.stasis")
        try writeBytes(tampered, to: tamperedPath)
        chmod(tamperedPath, 0o600)
        #expect(try Stasis.run(["verify", tamperedPath], in: scratch.path).code == 0, "CRCs alone accept it")
        let refused = try Stasis.run(["restart", "--key", keyFile, tamperedPath], in: scratch.path)
        #expect(refused.code == 11 && refused.output.split(separator: "\n").count == 1, "\(refused.output)")

        // The right key restores, and the restored program signs its next image with it.
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--key", keyFile, "--pid-file", pidFile, image],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        let next = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
        let nextImage = next.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(try Stasis.run(["verify", "--key", keyFile, nextImage], in: scratch.path).code == 0)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect((try String(contentsOfFile: output)).contains("PASS"))
    }

    @Test func anUnsignedImageIsRefusedWhenAKeyIsRequired() throws {
        let scratch = Scratch()
        try writeBytes(Array("k".utf8), to: scratch.file("key"))
        let (program, _) = try DurabilityTests().startCounter(scratch, mebibytes: 1)
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        program.killAndReap()
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        let refused = try Stasis.run(["restart", "--key", scratch.file("key"), image], in: scratch.path)
        #expect(refused.code == 11 && refused.output.contains("not signed"), "\(refused.output)")
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= haystack.count, let first = needle.first else { return false }
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && Array(haystack[i..<i + needle.count]) == needle { return true }
        i += 1
    }
    return false
}

/// --checkpoint-on: a scheduler's warning signal writes a checkpoint and exits with a chosen code;
/// the image restarts and the program finishes its work.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct CheckpointOnSignalTests {
    @Test func checkpointThenExitWithTheConfiguredCode() throws {
        let scratch = Scratch()
        let (program, output) = try DurabilityTests().startCounter(scratch, mebibytes: 2,
                                                                  extra: ["--checkpoint-on", "HUP", "--exit-code", "85"])
        program.send(SIGHUP)
        #expect(try program.wait() == .exited(85))
        let images = opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }
        try #require(images.count == 1, "\(images)")
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, scratch.file(images[0])],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect((try String(contentsOfFile: output)).contains("PASS"))
    }
}

/// --interval: periodic checkpoints from a watcher that is not the program's child and goes away
/// with the program.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct IntervalTests {
    @Test func periodicCheckpointsFromADetachedWatcher() throws {
        let scratch = Scratch()
        let (program, _) = try DurabilityTests().startCounter(scratch, mebibytes: 1, extra: ["--interval", "1s"])
        try waitUntil("two periodic images", seconds: 20) {
            opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.count >= 2
        }
        // No child of the program stays: a copy-on-write checkpoint's intermediate child lives for a
        // moment (it clones the writer and is reaped at once), so only a child seen in every one of
        // ten looks 100 ms apart would be the watcher's or a leak.
        var persistent: Set<String>? = nil
        for _ in 0..<10 {
            let text = (try? String(contentsOfFile: "/proc/\(program.pid)/task/\(program.pid)/children")) ?? ""
            let seen = Set(text.split(separator: " ").map(String.init).filter { !$0.isEmpty && $0 != "\n" })
            persistent = persistent.map { $0.intersection(seen) } ?? seen
            usleep(100_000)
        }
        #expect(persistent?.isEmpty == true, "the program has children: \(persistent ?? [])")
        for name in opendirNames(scratch.path) where name.hasSuffix(".stasis") {
            #expect(try Stasis.run(["verify", scratch.file(name)], in: scratch.path).code == 0)
        }
        program.killAndReap()
        // The watcher notices within a second or two and stops; no new images appear.
        sleep(3)
        let count = opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.count
        sleep(2)
        #expect(opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.count == count)
    }

    @Test func restartKeepsCheckpointingEveryInterval() throws {
        let scratch = Scratch()
        let (program, output) = try DurabilityTests().startCounter(scratch, mebibytes: 1)
        let (code, text) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        program.killAndReap()
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--interval", "1s", "--pid-file", pidFile, image],
                                       outputPath: scratch.file("restart.log"))
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        try waitUntil("periodic images after restart", seconds: 20) {
            opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") }.count >= 3
        }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect((try String(contentsOfFile: output)).contains("PASS"))
    }
}
