import Glibc
import StasisImage
import Testing

/// --compress with real programs and runtimes, lazy paging from blocks, signed images, inspect.
extension CompressionTests {
    /// A lazy restart of a compressed image with the pager held back, checkpointed (compressed) at
    /// once: the checkpoint waits for the pages still in compressed blocks, so the second image,
    /// restarted eagerly, holds every page.
    @Test(.timeLimit(.minutes(5))) func aCheckpointWhilePagingInFromCompressedBlocksHoldsEveryPage() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("compressible", into: scratch.path)
        let (original, output) = try start([binary, "text", "16"], scratch, output: "compressible.out")
        let first = try checkpoint(original.pid, scratch, ["--compress"]).image
        original.killAndReap()
        let paging = try restart(first, scratch, environment: ["STASIS_PAGER_DELAY_MS=3000"])
        let second = try checkpoint(paging.pid, scratch, ["--compress"]).image
        kill(paging.pid, SIGKILL)
        #expect(try paging.launcher.wait() == .signaled(SIGKILL))
        #expect(try format(second, scratch) == 4)
        let restored = try restart(second, scratch, options: ["--eager"])
        try expectPass(restored, output: output, pass: "PASS compressible text", "the image taken while paging in")
    }

    /// The lazy fixture (LazyRestartTests) over a compressed image: with the pager held back, system
    /// calls on pages not yet there, MADV_DONTNEED, mremap, munmap and fork meet pages that the pager
    /// decodes from blocks; every page checks out, in the fork's child too.
    @Test(.timeLimit(.minutes(5))) func memoryWorksWhilePagesComeFromCompressedBlocks() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("lazy", into: scratch.path)
        let (original, output) = try start([binary, "65536"], scratch, output: "lazy.out", runOptions: ["--compress"])
        let image = try checkpoint(original.pid, scratch).image
        original.killAndReap()
        #expect(try decode(image).memoryAreas.contains { $0.isCompressed && $0.rawBytes >= 65536 * 4096 })
        let restored = try restart(image, scratch, environment: ["STASIS_PAGER_DELAY_MS=3000"])
        kill(restored.pid, SIGUSR1)
        try waitUntil("the fixture's checks while paging in") { ((try? String(contentsOfFile: output)) ?? "").contains("LAZYCHECK") }
        try expectPass(restored, output: output, pass: "PASS", "the lazy fixture")
        let text = try String(contentsOfFile: output)
        #expect(text.contains("LAZYCHECK PASS") && text.contains("LAZY 1"), "\(text.suffix(300))")
    }

    /// The counter fixture (a pattern, vector registers, MXCSR, a file offset, a blocked pending
    /// signal, a MADV_DONTFORK area the copy-on-write writer must still see) from a compressed image,
    /// written by the copy-on-write child and in place.
    @Test(.timeLimit(.minutes(3)), arguments: [[String](), ["--no-fork"]])
    func theCounterFixtureRestartsFromACompressedImage(writer: [String]) throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let (original, output) = try start([binary, "64", input], scratch, output: "counter.out", runOptions: ["--compress"])
        defer { original.killAndReap() }
        usleep(UInt32.random(in: 50_000...400_000))  // a random moment
        let image = try checkpoint(original.pid, scratch, writer).image
        original.killAndReap()
        #expect(try decode(image).memoryAreas.contains { $0.isCompressed && $0.rawBytes >= 64 << 20 }, "the 64 MiB pattern")
        let restored = try restart(image, scratch)
        try expectPass(restored, output: output, pass: "PASS", "counter \(writer)")
    }

    /// Debian's non-PIE python3 (the brk trap: its heap must keep growing after restart) with its
    /// [heap] and its arenas in compressed blocks, restarted eagerly and lazily.
    @Test(.timeLimit(.minutes(3)), .enabled(if: access("/usr/bin/python3", X_OK) == 0, "no /usr/bin/python3"))
    func pythonWithACompressedHeapKeepsGrowingItAfterRestart() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let script = Stasis.packageRoot + "/Tests/Fixtures/python-state/main.py"
        let (original, output) = try start(["/usr/bin/python3", script], scratch, output: "python.out", runOptions: ["--compress"])
        defer { original.killAndReap() }
        usleep(100_000)
        let image = try checkpoint(original.pid, scratch).image
        original.killAndReap()
        #expect(try decode(image).memoryAreas.contains { $0.isCompressed && $0.flags.contains(.heap) }, "[heap] compressed")
        for options in [["--eager"], []] {
            let restored = try restart(image, scratch, options: options)
            try expectPass(restored, output: output, pass: "PASS", "python3 restarted \(options)")
        }
    }

    /// `stasis inspect --json` lists per area the bytes of the pages it stores (Docs/JSON-OUTPUT.md);
    /// a compressed area stores its pages too, in blocks, and must not say 0.
    @Test(.timeLimit(.minutes(2))) func inspectJSONCountsThePagesOfCompressedAreas() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let image = try compressedTextImage(scratch)
        let decoded = try decode(image)
        let (code, output) = try Stasis.run(["inspect", "--json", image], in: scratch.path)
        try #require(code == 0, "\(output)")
        let json = try #require(output.split(separator: "\n").first(where: { $0.hasPrefix("{") }))
        for area in decoded.memoryAreas where area.isCompressed {
            let entry = jsonValue(json, "memory").split(separator: "{\"start\": \(area.start), ", maxSplits: 1)
            let stored = entry.count == 2 ? UInt64(jsonValue(entry[1], "stored_bytes").prefix { $0.isNumber }) : nil
            let what = "area \(String(area.start, radix: 16)): \(area.storedPages) pages stored in \(area.blocks.count) blocks"
            #expect(stored.map { $0 > 0 } == true, "\(what); JSON stored_bytes \(stored.map(String.init) ?? "missing")")
        }
    }

    /// --key with --compress: the signature covers the compressed blocks; the image verifies and
    /// restarts with its key only.
    @Test(.timeLimit(.minutes(2))) func aSignedCompressedImageVerifiesAndRestartsWithItsKeyOnly() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let keyFile = scratch.file("key"), otherKey = scratch.file("other-key")
        try writeBytes((0..<48).map { _ in UInt8.random(in: 0...255) }, to: keyFile)
        try writeBytes(Array("another key entirely".utf8), to: otherKey)
        let binary = try compileFixture("compressible", into: scratch.path)
        let (original, output) = try start([binary, "text", "8"], scratch, output: "compressible.out",
                                           runOptions: ["--key", keyFile, "--compress"])
        let image = try checkpoint(original.pid, scratch).image
        original.killAndReap()
        #expect(try format(image, scratch) == 4)
        #expect(try Stasis.run(["verify", "--key", keyFile, image], in: scratch.path).code == 0)
        let wrong = try Stasis.run(["verify", "--key", otherKey, image], in: scratch.path)
        #expect(wrong.code == 11 && wrong.output.contains("signature"), "\(wrong.output)")
        let refused = try Stasis.run(["restart", "--key", otherKey, image], in: scratch.path)
        #expect(refused.code == 11, "\(refused.output)")
        let restored = try restart(image, scratch, options: ["--key", keyFile])
        try expectPass(restored, output: output, pass: "PASS compressible text", "the signed image")
    }
    /// (6) `stasis job --compress`: a checkpoint signal stops the job with a format-4 image; the same
    /// command resumes it from that image, and the program verifies its memory.
    @Test(.timeLimit(.minutes(3))) func aJobWithCompressStopsAndResumesFromACompressedImage() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("compressible", into: scratch.path)
        let directory = scratch.file("ckpt")
        let pidFile = scratch.file("job.pid")
        let job = ["job", "--dir", directory, "--checkpoint-on", "USR1", "--compress", "--pid-file", pidFile, "--", binary, "text", "8"]
        let log = scratch.file("job.log")
        let first = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { first.killAndReap() }
        try waitUntil("READY") { logText(log).contains("READY") }
        first.send(SIGUSR1)
        #expect(try first.wait() == .exited(85), "\(logText(log))")
        let images = opendirNames(directory).filter { $0.hasSuffix(".stasis") }
        try #require(images.count == 1, "\(images)")
        let image = try decode(directory + "/" + images[0])
        #expect(image.header.version == 4 && image.memoryAreas.contains(where: \.isCompressed), "format \(image.header.version)")

        let text = try resumeAndFinish(job, pidFile: pidFile, log: log)
        #expect(text.contains("stasis job: resumed from \(directory)/\(images[0])"), "\(text)")
        #expect(text.contains("PASS compressible text") && !text.contains("FAIL"), "\(text)")
    }

    /// `stasis job --compress --interval`: the newest image gets a damaged compressed block; the next
    /// run finds it does not verify (its blocks are checked) and resumes from the one before it.
    @Test(.timeLimit(.minutes(3))) func aJobResumesFromThePreviousImageWhenABlockOfTheNewestIsDamaged() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("compressible", into: scratch.path)
        let directory = scratch.file("ckpt")
        let pidFile = scratch.file("job.pid")
        let job = ["job", "--dir", directory, "--interval", "1s", "--checkpoint-on", "TERM", "--exit-code", "3", "--compress",
                   "--pid-file", pidFile, "--", binary, "text", "8"]
        let log = scratch.file("job.log")
        let first = try ChildProcess(Stasis.launcher, job, outputPath: log)
        defer { first.killAndReap() }
        try waitUntil("two periodic images") { opendirNames(directory).filter { $0.hasSuffix(".stasis") }.count >= 2 }
        first.send(SIGTERM)
        #expect(try first.wait() == .exited(3), "\(logText(log))")
        let images = opendirNames(directory).filter { $0.hasSuffix(".stasis") }.sorted()
        let newest = directory + "/" + images[images.count - 1]
        let previous = directory + "/" + images[images.count - 2]
        var bytes = try readBytes(newest)
        bytes[try compressedBlockByte(bytes).byte] ^= 0x10
        try writeBytes(bytes, to: newest)

        let text = try resumeAndFinish(job, pidFile: pidFile, log: log)
        #expect(text.contains("stasis job: \(newest) does not verify"), "\(text)")
        #expect(text.contains("stasis job: resumed from \(previous)"), "\(text)")
        #expect(text.contains("PASS compressible text") && !text.contains("FAIL"), "\(text)")
    }
}

/// Runs `stasis job` again (it resumes), lets the program verify itself (SIGTERM), expects exit 0;
/// returns the job's log.
private func resumeAndFinish(_ job: [String], pidFile: String, log: String) throws -> String {
    unlink(pidFile)
    let second = try ChildProcess(Stasis.launcher, job, outputPath: log)
    defer { second.killAndReap() }
    guard let pid = try waitForPIDFile(pidFile, of: second, log: log, "stasis job (resume)") else {
        throw TestFailure("the job ended without resuming: \(logText(log))")
    }
    usleep(100_000)
    kill(pid, SIGTERM)
    #expect(try second.wait() == .exited(0), "\(logText(log))")
    return logText(log)
}

private func logText(_ path: String) -> String { (try? String(contentsOfFile: path)) ?? "" }
