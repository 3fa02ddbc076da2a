import Glibc
import StasisImage
import Testing

/// `stasis restart` of bad input: one line on stderr, the documented exit code, no crash, nothing started.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct BadInputTests {
    /// A real image of a small counter, taken once for these tests.
    func realImage(_ scratch: Scratch, mebibytes: Int = 1) throws -> [UInt8] {
        let binary = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let output = scratch.file("counter.out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, String(mebibytes), input],
                                     outputPath: output, workingDirectory: scratch.path)
        defer { child.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        #expect(code == 0, "\(text)")
        let path = text.split(separator: "\n").last.map(String.init) ?? ""
        return try readBytes(path)
    }

    func restart(_ bytes: [UInt8], _ scratch: Scratch, options: [String] = []) throws -> (Int32, String) {
        let path = scratch.file("bad-\(UInt32.random(in: 0...UInt32.max)).stasis")
        try writeBytes(bytes, to: path)
        return try Stasis.run(["restart"] + options + [path], in: scratch.path)
    }

    func expectCleanError(_ result: (Int32, String), code: Int32, mentioning word: String) {
        let (status, output) = result
        #expect(status == code, "exit \(status), output: \(output)")
        let lines = output.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(output)")
        #expect(output.hasPrefix("stasis: ") && output.contains(word), "message: \(output)")
    }

    @Test func truncatedImagesAreRefused() throws {
        let scratch = Scratch()
        let image = try realImage(scratch)
        for length in [0, 10, 143, 144, 300, 5000, image.count / 2, image.count - 4096, image.count - 1] {
            expectCleanError(try restart(Array(image.prefix(length)), scratch), code: 3, mentioning: "image")
        }
    }

    @Test func aFileThatIsNotAnImageIsRefused() throws {
        let scratch = Scratch()
        expectCleanError(try restart(Array("#!/bin/sh\necho not an image\n".utf8) + [UInt8](repeating: 65, count: 4096), scratch),
                         code: 3, mentioning: "not a Stasis image")
        expectCleanError(try Stasis.run(["restart", scratch.file("missing.stasis")], in: scratch.path), code: 3,
                         mentioning: "cannot open")
    }

    @Test func anImageUsingACPUFeatureThisMachineLacksIsRefused() throws {
        let scratch = Scratch()
        var image = try realImage(scratch)
        // Header XCR0 (offset 24): claim AMX tile state (bits 17, 18), which no CPU here enables, and
        // reseal the header so that the checksum is right and only the CPU check can refuse it.
        image[24 + 2] |= 0x06
        resealHeader(&image)
        expectCleanError(try restart(image, scratch), code: 4, mentioning: "AMX")
    }

    /// --eager: every page is read (and its checksum checked) before the program runs.
    @Test func aFlippedBitAnywhereIsRefusedBeforeAnythingStarts() throws {
        let scratch = Scratch()
        let image = try realImage(scratch)
        // The header, a record header, a payload, page data, the END record.
        for offset in [30, 200, 300, 2000, image.count / 2, image.count - 20] {
            var corrupt = image
            corrupt[offset] ^= 0x10
            let (status, output) = try restart(corrupt, scratch, options: ["--eager"])
            #expect(status == 3, "byte \(offset): exit \(status): \(output)")
            #expect(output.contains("checksum") || output.contains("corrupt") || output.contains("image"),
                    "byte \(offset): \(output)")
            #expect(output.split(separator: "\n").count == 1, "byte \(offset): \(output)")
        }
    }
}

extension BadInputTests {
    /// Lazy restart (the default) checks the page data of lazily restored areas while it pages them
    /// in: a flipped bit there stops the program, and `stasis restart` exits 3 (bad image) with one
    /// line naming the checksum, as `--eager` (which finds it before anything runs) and `verify` do:
    /// a script that falls back to an older image sees the same code in every mode.
    @Test(arguments: [[], ["--eager"]])
    func aFlippedPageBitExitsWithBadImage(mode: [String]) throws {
        let scratch = Scratch()
        let image = try realImage(scratch, mebibytes: 8)
        var corrupt = image
        corrupt[image.count / 2] ^= 0x10  // inside the 8 MiB pattern's pages
        let (status, output) = try restart(corrupt, scratch, options: mode)
        #expect(status == 3, "\(mode): exit \(status): \(output)")
        #expect(output.contains("checksum") && output.contains("older image"), "\(mode): \(output)")
        #expect(output.split(separator: "\n").count == 1, "\(mode): \(output)")
    }
}

/// What this version cannot checkpoint is refused with one line, and the program keeps running.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct UnsupportedProgramTests {
    @Test func anUnsupportedDescriptorIsNamedInTheError() throws {
        let scratch = Scratch()
        let output = scratch.file("out")
        // A pidfd is not supported yet: the agent must name the fd and keep the program running.
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", "python3", "-c",
                                                       "import os, time; f = os.pidfd_open(os.getpid()); print('READY', f, flush=True); time.sleep(60)"],
                                     outputPath: output)
        defer { child.killAndReap() }
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        #expect(code == 7, "\(text)")
        #expect(text.contains("pidfd") && text.contains("is not supported yet"), "\(text)")
        #expect(text.split(separator: "\n").count == 1, "\(text)")
        #expect(kill(child.pid, 0) == 0)
        #expect(opendirNames(scratch.path).filter { $0.hasSuffix(".stasis") || $0.hasSuffix(".tmp") }.isEmpty)
    }
}

/// Options that let a user go on past what Stasis cannot do, with warnings.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct EscapeHatchTests {
    @Test func skipUnsupportedCheckpointsAndRestartPutsDevNullThere() throws {
        let scratch = Scratch()
        let output = scratch.file("out")
        let script = "import os, signal, sys, time\n"
            + "f = os.pidfd_open(os.getpid())\n"
            + "signal.signal(signal.SIGTERM, lambda *a: (print('PASS', os.readlink('/proc/self/fd/%d' % f), flush=True), sys.exit(0)))\n"
            + "print('READY', flush=True)\n"
            + "while True: time.sleep(0.01)\n"
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", "python3", "-c", script],
                                     outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", "--skip-unsupported", String(child.pid)], in: scratch.path)
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        child.killAndReap()
        let log = scratch.file("restart.log")
        let pidFile = scratch.file("restored.pid")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--pid-file", pidFile, image], outputPath: log)
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        usleep(100_000)
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect((try String(contentsOfFile: log)).contains("was not saved (--skip-unsupported)"))
        #expect((try String(contentsOfFile: output)).contains("PASS /dev/null"))
    }

    @Test func changedFileIsRefusedUnlessAllowed() throws {
        let scratch = Scratch()
        let binary = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let output = scratch.file("out")
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary, "1", input],
                                     outputPath: output)
        try waitUntil("READY") { ((try? String(contentsOfFile: output)) ?? "").contains("READY") }
        let (code, text) = try Stasis.run(["checkpoint", String(child.pid)], in: scratch.path)
        try #require(code == 0, "\(text)")
        let image = text.split(separator: "\n").last.map(String.init) ?? ""
        child.killAndReap()
        try "12345678 and more".write(toFile: input)  // the read-only input changed
        let refused = try Stasis.run(["restart", image], in: scratch.path)
        #expect(refused.code == 5 && refused.output.contains("--allow-changed-files"), "\(refused.output)")
        let pidFile = scratch.file("restored.pid")
        let log = scratch.file("restart.log")
        let restart = try ChildProcess(Stasis.launcher, ["restart", "--allow-changed-files", "--pid-file", pidFile, image],
                                       outputPath: log)
        try waitUntil("restored pid") { access(pidFile, R_OK) == 0 }
        let pid = pid_t((try String(contentsOfFile: pidFile)).trimmingCharacters(in: "\n")) ?? -1
        kill(pid, SIGTERM)
        #expect(try restart.wait() == .exited(0))
        #expect((try String(contentsOfFile: log)).contains("warning: fd 3: \(input) changed"))
    }
}

func opendirNames(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) })
    }
    return names
}

/// Recomputes the header CRC (stasis_image_header_t.header_crc) after a test edited the header.
func resealHeader(_ image: inout [UInt8]) { ImageHeader.reseal(&image) }

func readBytes(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "r") else { throw TestFailure("cannot open \(path)") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return bytes
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    guard let f = fopen(path, "w") else { throw TestFailure("cannot write \(path)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}
