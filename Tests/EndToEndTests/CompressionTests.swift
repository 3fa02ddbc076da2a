import Glibc
import StasisImage
import Testing

/// --compress (issue 16): page data of private areas in PAGE_BLOCKS records, image format 4. The
/// compressible fixture hashes memory of the kinds programs hold (text records, small integers, a
/// smooth field, pointers; or random bytes), an area unreadable at the checkpoint, a read-only one and
/// one stored in runs; after each restart it hashes again (SIGTERM) and prints PASS or FAIL.
/// More cases: CompressionTests+Programs.swift (runtimes, lazy paging, signing, inspect, stasis job) and
/// CompressionTests+Damage.swift (damaged and truncated images).
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct CompressionTests {
    static let mebibyte = 1 << 20

    /// `stasis run --dir SCRATCH RUNOPTIONS -- ARGUMENTS` until READY in its output file `name`.
    func start(_ arguments: [String], _ scratch: Scratch, output name: String,
               runOptions: [String] = []) throws -> (child: ChildProcess, output: String) {
        let output = scratch.file(name)
        let child = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path] + runOptions + ["--"] + arguments,
                                     outputPath: output, workingDirectory: scratch.path)
        try waitUntil("READY from \(arguments[0])") {
            let text = (try? String(contentsOfFile: output)) ?? ""
            return text.contains("READY") || text.contains("FAIL") || processState(child.pid) == "Z"
        }
        let text = try String(contentsOfFile: output)
        guard text.contains("READY") else { throw TestFailure("\(arguments[0]) did not get ready: \(text)") }
        return (child, output)
    }

    /// `stasis checkpoint --json EXTRA PID`: the image and its chain length.
    func checkpoint(_ pid: pid_t, _ scratch: Scratch, _ extra: [String] = []) throws -> (image: String, chain: Int) {
        let (code, output) = try Stasis.run(["checkpoint", "--json"] + extra + [String(pid)], in: scratch.path)
        try #require(code == 0, "stasis checkpoint \(extra): \(output)")
        let line = try #require(output.split(separator: "\n").last(where: { $0.hasPrefix("{") }), "no JSON in: \(output)")
        let image = String(jsonValue(line, "image").dropFirst().prefix { $0 != "\"" })
        return (image, Int(jsonValue(line, "chain_length").prefix { $0.isNumber }) ?? -1)
    }

    /// The compressible fixture (8 MiB of text-like heap) checkpointed with --compress and killed: its image.
    func compressedTextImage(_ scratch: Scratch) throws -> String {
        let binary = try compileFixture("compressible", into: scratch.path)
        let (original, _) = try start([binary, "text", "8"], scratch, output: "compressible.out")
        defer { original.killAndReap() }
        return try checkpoint(original.pid, scratch, ["--compress"]).image
    }

    /// What follows `"key": ` in a one-line JSON object.
    func jsonValue(_ line: Substring, _ key: String) -> Substring {
        let parts = line.split(separator: "\"" + key + "\": ", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count == 2 ? parts[1] : ""
    }

    /// The image's format as `stasis inspect --json` reports it (-1 when inspect fails).
    func format(_ image: String, _ scratch: Scratch) throws -> Int {
        let (code, output) = try Stasis.run(["inspect", "--json", image], in: scratch.path)
        guard code == 0, let line = output.split(separator: "\n").first(where: { $0.hasPrefix("{") }) else { return -1 }
        return Int(jsonValue(line, "format").prefix { $0.isNumber }) ?? -1
    }

    func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    func decode(_ path: String) throws -> Image { try Image.decode(from: ByteArraySource(try readBytes(path))) }

    /// `stasis restart --pid-file F OPTIONS IMAGE` (with `environment` set for it), once the program is back.
    func restart(_ image: String, _ scratch: Scratch, options: [String] = [], environment: [String] = []) throws -> RestoredProgram {
        let name = UInt32.random(in: 0...UInt32.max)
        let pidFile = scratch.file("restored-\(name).pid")
        let command = (environment.isEmpty ? [] : ["/usr/bin/env"] + environment) + [Stasis.launcher, "restart", "--pid-file", pidFile]
            + options + [image]
        let restored = try RestoredProgram(command, pidFile: pidFile, log: scratch.file("restart-\(name).log"))
        try restored.waitForProgram()
        return restored
    }

    /// SIGTERM to the restored program: it checks itself; expects exit 0, one more `pass` line and no FAIL.
    func expectPass(_ restored: RestoredProgram, output: String, pass: String, _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        func passes() -> Int { ((try? String(contentsOfFile: output)) ?? "").split(separator: "\n").filter { $0.hasPrefix(pass) }.count }
        let before = passes()
        usleep(100_000)
        kill(restored.pid, SIGTERM)
        let termination = try restored.launcher.wait()
        let text = (try? String(contentsOfFile: output)) ?? ""
        #expect(termination == .exited(0), "\(what): \(text.suffix(300)); restart: \(restored.logText)", sourceLocation: sourceLocation)
        #expect(passes() == before + 1 && !text.contains("FAIL"), "\(what): \(text.suffix(300))", sourceLocation: sourceLocation)
    }

    /// (1) One process, a plain and a compressed image of it: text shrinks (most blocks compressed),
    /// random data does not (every full block of the heap raw, the file about the plain one's size). The
    /// compressed image verifies and restarts eagerly and lazily (with the pager held back, so that
    /// the program's own checks fault the blocks in), unreadable and read-only areas included.
    /// `writer`: the default copy-on-write child, or the program itself (--no-fork).
    @Test(.timeLimit(.minutes(5)), arguments: [("text", [String]()), ("random", []), ("text", ["--no-fork"])])
    func aCompressedImageIsSmallerOnlyWhenItCanBeAndRestartsBothWays(mode: String, writer: [String]) throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("compressible", into: scratch.path)
        let (original, output) = try start([binary, mode], scratch, output: "compressible.out")
        let plain = try checkpoint(original.pid, scratch, writer).image
        let compressed = try checkpoint(original.pid, scratch, writer + ["--compress"]).image
        original.killAndReap()
        #expect(try format(plain, scratch) == 3)
        #expect(try format(compressed, scratch) == 4)
        for image in [plain, compressed] {
            let (code, text) = try Stasis.run(["verify", image], in: scratch.path)
            #expect(code == 0, "verify \(image): \(text)")
        }

        let image = try decode(compressed)
        let areas = image.memoryAreas.filter(\.isCompressed)
        #expect(!image.memoryAreas.contains { $0.isCompressed && $0.flags.contains(.shared) })
        let heap = try #require(areas.max { $0.rawBytes < $1.rawBytes })
        #expect(heap.rawBytes >= UInt64(64 * Self.mebibyte), "the 64 MiB heap is compressed")
        // the areas the restorer must treat with care: unreadable at the checkpoint, read-only, in runs
        #expect(areas.contains { $0.protection == 0 && $0.rawBytes == 100 * 4096 }, "the PROT_NONE area")
        #expect(areas.contains { $0.protection == UInt32(PROT_READ) && $0.rawBytes == 77 * 4096 }, "the read-only area")
        #expect(areas.contains { $0.runs.count >= 6 }, "the area with holes")
        #expect(areas.allSatisfy { area in area.blocks.allSatisfy { $0.pages <= 64 } })
        let (plainSize, compressedSize) = (fileSize(plain), fileSize(compressed))
        if mode == "text" {
            // about 56% here: the text and the small integers shrink most, the doubles' low bits hardly
            #expect(compressedSize < plainSize / 3 * 2, "compressed \(compressedSize) bytes, plain \(plainSize)")
            #expect(heap.blocks.filter(\.isRaw).count * 4 < heap.blocks.count, "most heap blocks shrink")
        } else {
            // (the heap's last page holds only the end of the malloc'd block, zeros after it: that one shrinks)
            let allRaw = heap.blocks.filter { $0.pages == 64 }.allSatisfy { $0.isRaw }
            #expect(allRaw, "random blocks are stored raw")
            #expect(compressedSize <= plainSize + plainSize / 50 && compressedSize > plainSize / 10 * 9,
                    "compressed \(compressedSize) bytes, plain \(plainSize)")
        }

        let eager = try restart(compressed, scratch, options: ["--eager"])
        try expectPass(eager, output: output, pass: "PASS compressible \(mode)", "eager restart")
        let lazy = try restart(compressed, scratch, environment: ["STASIS_PAGER_DELAY_MS=2000"])
        try expectPass(lazy, output: output, pass: "PASS compressible \(mode)", "lazy restart")
        let fromPlain = try restart(plain, scratch)
        try expectPass(fromPlain, output: output, pass: "PASS compressible \(mode)", "the plain image")
    }

    /// (2) `stasis run --compress` makes compression the default: a checkpoint without the flag is
    /// format 4, `--no-compress` format 3, both flags a usage error; both images restart a
    /// multithreaded program.
    @Test(.timeLimit(.minutes(5))) func runCompressIsTheDefaultAndNoCompressWritesFormat3() throws {
        let workers = 4
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("threads", into: scratch.path)
        let (original, output) = try start([binary, String(workers)], scratch, output: "threads.out", runOptions: ["--compress"])
        usleep(100_000)
        let defaulted = try checkpoint(original.pid, scratch).image
        let plain = try checkpoint(original.pid, scratch, ["--no-compress"]).image
        let (code, text) = try Stasis.run(["checkpoint", "--compress", "--no-compress", String(original.pid)], in: scratch.path)
        #expect(code != 0 && text.contains("exclude each other"), "\(text)")
        original.killAndReap()
        #expect(try format(defaulted, scratch) == 4)
        #expect(try format(plain, scratch) == 3)
        #expect(try decode(defaulted).memoryAreas.contains(where: \.isCompressed))
        #expect(try !decode(plain).memoryAreas.contains(where: \.isCompressed))

        for (image, what) in [(defaulted, "format 4"), (plain, "format 3")] {
            let restored = try restart(image, scratch)
            #expect(taskCount(restored.pid) == workers + 6, "\(what): threads in /proc/\(restored.pid)/task")
            // As in ThreadTests: another process may take an old thread id meanwhile (the environment).
            let log = restored.logText
            let tidsTaken = log.contains("could not restore thread ids") || log.contains("thread ids are patched")
            try withKnownIssue("an old thread id was taken by another process: \(log)", isIntermittent: true) {
                try expectPass(restored, output: output, pass: "PASS threads \(workers + 6)", what)
            } when: {
                tidsTaken
            }
        }
    }

    /// (3) Chains of three incremental images over the dirty fixture (pages rewritten, zapped and
    /// moved between them): all compressed (`run --incremental --compress`), or plain, compressed,
    /// plain (inherited pages come from a plain parent into a compressed image and from a compressed
    /// one into a plain image). A damaged block in the full image is refused (exit 3); the newest
    /// restarts eagerly and lazily (inherited pages decoded from compressed parents), and again once
    /// compacted with its parents gone.
    @Test(.timeLimit(.minutes(5)), arguments: [(["--compress"], [[String](), [], []]), ([], [[], ["--compress"], []])])
    func anIncrementalChainOfCompressedImagesRestartsAndCompacts(runOptions: [String], perCheckpoint: [[String]]) throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let binary = try compileFixture("dirty", into: scratch.path)
        let (original, output) = try start([binary, "32768", scratch.path], scratch, output: "dirty.out",
                                           runOptions: ["--incremental"] + runOptions)
        var images: [(image: String, chain: Int)] = []
        for extra in perCheckpoint {
            usleep(UInt32.random(in: 50_000...150_000))
            images.append(try checkpoint(original.pid, scratch, extra))
        }
        original.killAndReap()
        #expect(images.map(\.chain) == [1, 2, 3])
        let compressed = perCheckpoint.map { runOptions.contains("--compress") || $0.contains("--compress") }
        for ((image, _), isCompressed) in zip(images, compressed) {
            #expect(try format(image, scratch) == (isCompressed ? 4 : 3), "\(image)")
        }
        let (code, text) = try Stasis.run(["verify", images[2].image], in: scratch.path)
        #expect(code == 0, "verify of the chain: \(text)")

        // A flipped byte in a compressed block of the oldest compressed image, one that the newest
        // image inherits pages from (an area the newest stores whole inherits none): refused, one line.
        let damagedIndex = try #require(compressed.firstIndex(of: true))
        let inherited = try inheritedBlockByte(images.map(\.image), from: damagedIndex)
        #expect(inherited != nil || damagedIndex > 0, "the newest image inherits pages from the full image's blocks")
        if let at = inherited {
            let saved = try readBytes(images[damagedIndex].image)
            var damaged = saved
            damaged[at] ^= 0x10
            try writeBytes(damaged, to: images[damagedIndex].image)
            for mode in [["--eager"], []] {
                let (refusedCode, refused) = try Stasis.run(["restart"] + mode + [images[2].image], in: scratch.path)
                #expect(refusedCode == 3 && refused.split(separator: "\n").count == 1, "restart \(mode) over a damaged block: \(refused)")
            }
            try writeBytes(saved, to: images[damagedIndex].image)
        }

        // The fixture unlinks its scratch file (a private file mapping) after PASS; a hard link keeps
        // the same file for the next restart.
        let files = opendirNames(scratch.path).filter { $0.hasPrefix("dirty-file-") }.map { scratch.file($0) }
        try #require(files.count == 1, "\(files)")
        for file in files { #expect(link(file, file + ".keep") == 0) }
        func putBack() { for file in files where access(file, F_OK) != 0 { link(file + ".keep", file) } }

        for (options, environment) in [(["--eager"], [String]()), ([], ["STASIS_PAGER_DELAY_MS=1000"])] {
            putBack()
            let restored = try restart(images[2].image, scratch, options: options, environment: environment)
            try expectPass(restored, output: output, pass: "PASS", "restart \(options) of the newest image")
        }

        var (compactCode, compactText) = try Stasis.run(["compact", images[2].image], in: scratch.path)
        #expect(compactCode == 0, "compact: \(compactText)")
        (compactCode, compactText) = try Stasis.run(["verify", "--json", images[2].image], in: scratch.path)
        #expect(compactCode == 0 && compactText.contains("\"chain_length\": 1"), "verify after compact: \(compactText)")
        let compacted = try decode(images[2].image)
        #expect(compacted.parent == nil && !compacted.memoryAreas.contains(where: \.isCompressed), "compact writes pages plain")
        unlink(images[0].image)
        unlink(images[1].image)
        putBack()
        let restored = try restart(images[2].image, scratch)
        try expectPass(restored, output: output, pass: "PASS", "the compacted image")
    }

    /// The offset of a byte inside a compressed block of `images[index]` (a chain, oldest first) that
    /// the newest image inherits pages from, as restart resolves the chain; nil when it inherits none.
    func inheritedBlockByte(_ images: [String], from index: Int) throws -> Int? {
        let sources = try images.map { ByteArraySource(try readBytes($0)) }
        var chain = ImageChain(try Image.decode(from: sources[images.count - 1]), source: sources[images.count - 1])
        for i in stride(from: images.count - 2, through: 0, by: -1) {
            try chain.append(parent: try Image.decode(from: sources[i]), source: sources[i])
        }
        let member = images.count - 1 - index  // members: newest first
        for segment in try chain.resolveInheritedPages() where Int(segment.image) + 1 == member {
            guard let area = chain.compressedArea(of: segment) else { continue }
            let storedPage = segment.file_offset / RecordHeader.pageSize  // a compressed area's: in its stored pages
            guard let block = area.blocks.last(where: { $0.firstStoredPage <= storedPage }) else { continue }
            return Int(block.fileOffset) + Int(block.storedBytes) / 2
        }
        return nil
    }

    /// (4) A process tree (7 processes pinging each other over pipes, each with a pattern in private
    /// memory) under `stasis run --compress`: every member image is format 4 with compressed areas,
    /// and the tree restarts twice with its PIDs.
    @Test(.timeLimit(.minutes(5)), .enabled(if: getuid() == 0, "restoring a tree's PIDs needs root"))
    func aProcessTreeCheckpointedCompressedRestarts() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-big", into: scratch.path), "2", "2"], scratch: scratch,
                                   runOptions: ["--compress"])
        try tree.waitForReady()
        try #require(tree.descendants.count == 6, "\(tree.text)")
        for cycle in 1...2 {
            usleep(300_000)
            let image = try tree.checkpointImage("cycle \(cycle)")
            let members = opendirNames(image).filter { $0.hasSuffix(".stasis") }
            #expect(members.count == 7, "cycle \(cycle): \(members)")
            for member in members {
                let decoded = try decode(image + "/" + member)
                #expect(decoded.header.version == 4 && decoded.memoryAreas.contains(where: \.isCompressed),
                        "cycle \(cycle): \(member) is format \(decoded.header.version)")
            }
            try tree.killAll()
            try tree.restart(image)
        }
        try tree.expectPass("PASS big 7 processes")
    }

    /// A tree sharing MAP_SHARED|MAP_ANONYMOUS memory and a POSIX shm region (with process-shared
    /// mutexes) under --compress: shared areas stay plain, private ones are compressed, and after a
    /// restart the region is one again for both processes.
    @Test(.timeLimit(.minutes(5)), .enabled(if: getuid() == 0, "restoring a tree's PIDs needs root"))
    func aTreeWithSharedMemoryCheckpointedCompressedRestarts() throws {
        let scratch = Scratch()
        let tree = try ProcessTree([try compileFixture("tree-shm", into: scratch.path)], scratch: scratch, runOptions: ["--compress"])
        defer { unlink("/dev/shm/stasis-tree-\(tree.root)") }
        try tree.waitForReady()
        usleep(300_000)
        let image = try tree.checkpointImage("the checkpoint")
        for member in opendirNames(image).filter({ $0.hasSuffix(".stasis") }) {
            let decoded = try decode(image + "/" + member)
            #expect(decoded.header.version == 4, "\(member)")
            #expect(!decoded.memoryAreas.contains { $0.isCompressed && $0.flags.contains(.shared) }, "\(member): a shared area compressed")
        }
        try tree.killAll()
        try tree.restart(image)
        try tree.expectPass("PASS shm")
    }
}
