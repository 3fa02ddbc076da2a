import Glibc
import StasisImage
import StasisImageSamples
import Testing
@testable import StasisLauncher

/// A tree checkpoint written to a fresh directory under /tmp: DIR/sh-1000-0002.stasis/{tree, 1000.stasis,
/// 1001.stasis} from a `SampleTree` (1002 is a zombie). Removed by `remove()`.
struct TreeOnDisk {
    let directory: String
    var tree: String { directory + "/sh-1000-0002.stasis" }
    func member(_ pid: Int32) -> String { tree + "/\(pid).stasis" }
    var manifest: String { tree + "/tree" }

    init(_ sample: SampleTree = SampleTree()) throws {
        var template = Array("/tmp/stasis-tree-test-XXXXXX".utf8CString)
        try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) } != nil)
        directory = String(cString: template)
        try #require(mkdir(directory + "/sh-1000-0002.stasis", 0o700) == 0)
        try write(sample)
    }

    /// Writes the sample's manifest and members over what is there.
    func write(_ sample: SampleTree) throws {
        try writeFile(manifest, sample.manifestBytes)
        for (pid, bytes) in sample.members { try writeFile(member(pid), bytes) }
    }

    func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
    }

    /// Everything under `directory`, two levels deep (what these tests create).
    func remove() {
        func clear(_ path: String) {
            for name in (try? FileSystemNames.of(path)) ?? [] {
                let child = path + "/" + name
                if rmdir(child) != 0 { clear(child); _ = rmdir(child); _ = unlink(child) }
            }
        }
        clear(directory)
        rmdir(directory)
    }
}

/// The names in a directory (test helper; errors are the test's).
enum FileSystemNames {
    static func of(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw LauncherError(.failure, "opendir \(path)") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// The error a throwing call gave (nil when it did not throw).
func launcherError(_ body: () throws(LauncherError) -> Void) -> LauncherError? {
    do { try body() } catch { return error }
    return nil
}

/// `inspect`, `verify`, `ls` and `compact` on tree checkpoints (directories) built from hand-made images.
@Suite struct TreeCommandTests {
    @Test func inspectShowsTheProcessesThenEachMember() throws {
        let disk = try TreeOnDisk()
        defer { disk.remove() }
        let text = try InspectCommand.render(disk.tree, json: false)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].hasPrefix("tree:       format \(ImageHeader.currentVersion), x86-64, 3 processes (2 images, 1 zombie), "), "\(text)")
        #expect(lines.contains("pid:        1000 (uid 0), checkpoint #2, taken at \(formatTime(0))"), "\(text)")
        let header = try #require(lines.firstIndex { $0.hasPrefix("PID ") })
        #expect(lines[header].hasSuffix("STATE    IMAGE        COMMAND"), "\(lines[header])")
        #expect(lines[header + 1].hasPrefix("1000  999 ") && lines[header + 1].hasSuffix("  sh [root, own session]"))
        #expect(lines[header + 2].hasPrefix("1001  1000") && lines[header + 2].hasSuffix("  \\_ worker [subreaper, death signal 15]"))
        #expect(lines[header + 3].hasPrefix("1002  1001") && lines[header + 3].contains(" zombie ")
            && lines[header + 3].hasSuffix("     \\_ worker [subreaper, death signal 15, exited 42]"), "\(lines[header + 3])")
        // Each member as `inspect` shows one image, in manifest order.
        let sections = lines.filter { $0.hasPrefix("== process ") }
        #expect(sections == ["== process 1000 (sh): \(disk.member(1000))", "== process 1001 (worker): \(disk.member(1001))"])
        let member = try InspectCommand.render(disk.member(1001), json: false)
        #expect(text.hasSuffix("== process 1001 (worker): \(disk.member(1001))\n" + member), "\(text)")
        #expect(member.contains("  3: regular /tmp/shared.log flags 0x1 offset 0 (same open file as process 1000 fd 3)\n"))
        #expect(try InspectCommand.render(disk.member(1000), json: false).contains("  3: regular /tmp/shared.log flags 0x1 offset 0\n"))
    }

    @Test func inspectJSONHasProcessesAndMemberObjects() throws {
        let disk = try TreeOnDisk()
        defer { disk.remove() }
        let json = try InspectCommand.render(disk.tree, json: true)
        #expect(json.hasPrefix("{\"format\": \(ImageHeader.currentVersion), \"size\": "), "\(json)")
        #expect(json.contains("\"pid\": 1000, \"uid\": 0, \"sequence\": 2, "))
        #expect(json.contains("\"processes\": [{\"pid\": 1000, \"ppid\": 999, \"pgid\": 1000, \"sid\": 900, \"state\": \"running\", "
            + "\"exit_signal\": 17, \"death_signal\": 0, \"command\": \"sh\", \"flags\": [\"root\", \"own_session\"], "
            + "\"image\": \"1000.stasis\", \"image_size\": "), "\(json)")
        #expect(json.contains("{\"pid\": 1002, \"ppid\": 1001, \"pgid\": 1000, \"sid\": 900, \"state\": \"zombie\", \"exit_status\": 10752, "
            + "\"exit_signal\": 17, \"death_signal\": 15, \"command\": \"worker\", \"flags\": [\"child_subreaper\"], \"image\": null, "
            + "\"image_size\": 0}]"), "\(json)")
        // The member objects are the single-image objects with their file name first.
        let single = try InspectCommand.render(disk.member(1001), json: true)
        #expect(json.hasSuffix(", {\"image\": \"1001.stasis\", " + single.dropFirst() + "]}"), "\(json)")
        #expect(single.contains("\"cloexec\": false, \"shared_with\": {\"pid\": 1000, \"fd\": 3}}"), "\(single)")
        #expect(json.split(separator: "shared_with").count == 2, "only 1001's fd 3 is shared")
        #expect(json.filter { $0 == "{" }.count == json.filter { $0 == "}" }.count)
    }

    @Test func aStoppedProcessAndAnOwnGroupAreShown() throws {
        var sample = SampleTree()
        sample.manifest.processes[1].state = .stopped
        sample.manifest.processes[1].flags.insert(.ownGroup)
        sample.manifest.processes[1].exitSignal = 0
        let disk = try TreeOnDisk(sample)
        defer { disk.remove() }
        let text = try InspectCommand.render(disk.tree, json: false)
        #expect(text.split(separator: "\n").contains { $0.hasPrefix("1001  1000") && $0.contains(" stopped ")
            && $0.hasSuffix("\\_ worker [subreaper, own group, exit signal 0, death signal 15]") }, "\(text)")
        let json = try InspectCommand.render(disk.tree, json: true)
        #expect(json.contains("\"state\": \"stopped\", \"exit_signal\": 0, \"death_signal\": 15, \"command\": \"worker\", "
            + "\"flags\": [\"child_subreaper\", \"own_group\"], \"image\": \"1001.stasis\""), "\(json)")
    }

    @Test func verifyChecksTheManifestAndEveryMember() throws {
        let disk = try TreeOnDisk()
        defer { disk.remove() }
        let text = try VerifyCommand.report(disk.tree, key: nil, json: false, showProgress: false)
        #expect(text == "\(disk.tree): ok (tree of 3 processes: 2 images, 1 zombie; 4 memory areas, 2 threads, 16384 bytes of pages)")
        // A trailing slash names the same tree.
        #expect(try VerifyCommand.report(disk.tree + "/", key: nil, json: false, showProgress: false) == text)
        let json = try VerifyCommand.report(disk.tree, key: nil, json: true, showProgress: false)
        #expect(json.hasPrefix("{\"image\": \"\(disk.tree)\", \"ok\": true, \"size\": "), "\(json)")
        #expect(json.contains("\"stored_bytes\": 16384, \"chain_length\": 1, \"signed\": false, \"signature_checked\": false, \"processes\": 3, "
            + "\"members\": [{\"image\": \"\(disk.member(1000))\", \"pid\": 1000, \"ok\": true, "), "\(json)")
        #expect(stasisMain(["verify", disk.tree]) == 0)
        // A member given alone is an ordinary image.
        #expect(try VerifyCommand.report(disk.member(1001), key: nil, json: false, showProgress: false).hasPrefix("\(disk.member(1001)): ok ("))
    }

    @Test func aMissingMemberIsNamed() throws {
        let disk = try TreeOnDisk()
        defer { disk.remove() }
        unlink(disk.member(1001))
        for error in treeErrors(disk) {
            #expect(error?.code == .badImage)
            #expect(error?.message == "\(disk.tree): corrupt tree checkpoint: member 1001.stasis (process 1001, worker) is missing")
        }
        #expect(stasisMain(["verify", disk.tree]) == ExitCode.badImage.rawValue)
        #expect(stasisMain(["inspect", disk.tree]) == ExitCode.badImage.rawValue)
    }

    /// The errors of inspect, verify and ls (the row's message) on `disk`'s tree.
    func treeErrors(_ disk: TreeOnDisk, key: [UInt8]? = nil) -> [LauncherError?] {
        let inspect = launcherError { () throws(LauncherError) in _ = try InspectCommand.render(disk.tree, json: false) }
        let verify = launcherError { () throws(LauncherError) in _ = try VerifyCommand.report(disk.tree, key: key, json: false, showProgress: false) }
        let list = launcherError { () throws(LauncherError) in _ = try TreeDirectory(path: disk.tree).decodeMembers() }
        return [inspect, verify, list]
    }

    @Test func aMemberOfAnotherSizeOrHeaderIsRefused() throws {
        var sample = SampleTree()
        let disk = try TreeOnDisk(sample)
        defer { disk.remove() }
        try disk.writeFile(disk.member(1001), sample.members[1001]! + [0, 0, 0, 0, 0, 0, 0, 0])
        let size = sample.members[1001]!.count
        for error in treeErrors(disk) {
            #expect(error?.code == .badImage)
            #expect(error?.message.hasPrefix("\(disk.tree): corrupt tree checkpoint: member 1001.stasis has \(size + 8) bytes, "
                + "the manifest says \(size)") == true, "\(String(describing: error?.message))")
        }
        // A member of another checkpoint of the same process: same size, another header (sequence 4).
        var other = sample.members[1001]!
        other[48] = 4
        ImageHeader.reseal(&other)
        try disk.writeFile(disk.member(1001), other)
        for error in treeErrors(disk) {
            #expect(error?.code == .badImage)
            #expect(error?.message.contains("member 1001.stasis has header checksum 0x") == true, "\(String(describing: error?.message))")
        }
        // The root's image under the child's name, even with the manifest bound to it, is not the child's.
        sample.members[1001] = sample.members[1000]
        sample.bind()
        try disk.write(sample)
        for error in treeErrors(disk) {
            #expect(error?.message == "\(disk.tree): corrupt tree checkpoint: member 1001.stasis is an image of process 1000")
        }
    }

    @Test func aDamagedMemberPageFailsVerifyButNotInspect() throws {
        var sample = SampleTree()
        let bytes = sample.members[1001]!
        let image = try Image.decode(from: ByteArraySource(bytes))
        let area = try #require(image.memoryAreas.first { $0.dataBytes > 0 })
        sample.members[1001]![Int(area.dataOffset) + 5] ^= 1  // page data: no header or record CRC covers it
        let disk = try TreeOnDisk(sample)
        defer { disk.remove() }
        _ = try InspectCommand.render(disk.tree, json: false)
        let error = launcherError { () throws(LauncherError) in _ = try VerifyCommand.report(disk.tree, key: nil, json: false, showProgress: false) }
        #expect(error?.code == .badImage && error?.message.hasPrefix("\(disk.member(1001)): corrupt image: checksum mismatch") == true,
                "\(String(describing: error?.message))")
        let full = try ListCommand.rows(disk.directory, full: true, json: false)
        #expect(full.count == 1 && full[0].hasPrefix("sh-1000-0002.stasis  CORRUPT  modified ") && full[0].contains("checksum mismatch"),
                "\(full)")
        #expect(try ListCommand.rows(disk.directory, full: false, json: false)[0].hasSuffix("  tree of 3 processes  ok"))
    }

    @Test func aManifestTruncatedAnywhereIsCorrupt() throws {
        let sample = SampleTree()
        let disk = try TreeOnDisk(sample)
        defer { disk.remove() }
        let bytes = sample.manifestBytes
        for length in 0..<bytes.count {
            try disk.writeFile(disk.manifest, Array(bytes.prefix(length)))
            for error in treeErrors(disk) {
                #expect(error?.code == .badImage, "length \(length)")
                #expect(error?.message.hasPrefix("\(disk.manifest): ") == true, "length \(length): \(String(describing: error?.message))")
            }
            let row = try ListCommand.rows(disk.directory, full: false, json: false)
            #expect(row.count == 1 && row[0].hasPrefix("sh-1000-0002.stasis  CORRUPT  "), "length \(length): \(row)")
        }
        try disk.writeFile(disk.manifest, bytes)
        #expect(treeErrors(disk).allSatisfy { $0 == nil })
    }

    @Test func aSharedDescriptionMustNameAnEarlierMembersDescriptor() throws {
        for (owner, fd, why) in [(Int32(1002), Int32(3), "which is not a member before it with an image"),
                                 (1001, 3, "which is not a member before it with an image"),
                                 (1000, 9, "which that process's image does not hold")] {
            var sample = SampleTree()
            var w = ByteWriter()
            var descriptor = FileDescriptorRecord()
            descriptor.fd = 3
            descriptor.path = "/tmp/shared.log"
            descriptor.encode(into: &w)
            var share = ByteWriter()
            SharedDescriptionRecord(fd: 3, ownerPID: owner, ownerFD: fd).encode(into: &share)
            if owner == 1001 {
                // A process cannot share with itself (Image.validate): make the root share with the child instead.
                sample.members[1000] = sampleImage(extra: [(.fileDescriptor, w.bytes), (.sharedDescription, share.bytes)], pid: 1000).bytes
            } else {
                sample.members[1001] = sampleImage(extra: [(.fileDescriptor, w.bytes), (.sharedDescription, share.bytes)], pid: 1001).bytes
            }
            sample.bind()
            let disk = try TreeOnDisk(sample)
            defer { disk.remove() }
            for error in treeErrors(disk) {
                #expect(error?.code == .badImage && error?.message.hasSuffix(why) == true, "\(String(describing: error?.message))")
            }
        }
    }

    @Test func signedTreesCheckTheManifestAndEveryMember() throws {
        let key = Array("tree key".utf8)
        let disk = try TreeOnDisk(SampleTree(key: key))
        defer { disk.remove() }
        #expect(try VerifyCommand.report(disk.tree, key: key, json: false, showProgress: false).hasSuffix(", signatures ok)"))
        #expect(try VerifyCommand.report(disk.tree, key: nil, json: false, showProgress: false)
            .hasSuffix(", signed (HMAC-SHA256; not checked: give --key FILE))"))
        #expect(try VerifyCommand.report(disk.tree, key: key, json: true, showProgress: false)
            .contains("\"signed\": true, \"signature_checked\": true, \"processes\": 3"))
        #expect(try InspectCommand.render(disk.tree, json: false).split(separator: "\n")[0].hasSuffix(", signed (HMAC-SHA256; `stasis verify --key FILE` checks it)"))
        let wrong = launcherError { () throws(LauncherError) in _ = try VerifyCommand.report(disk.tree, key: Array("other".utf8), json: false, showProgress: false) }
        #expect(wrong?.code == .signatureMismatch && wrong?.message.hasPrefix("\(disk.manifest): signature check failed: ") == true)

        // An unsigned manifest over signed members, and signed members under an unsigned manifest's key check.
        var unsignedManifest = SampleTree(key: key)
        unsignedManifest.key = nil
        try disk.write(unsignedManifest)
        let error = launcherError { () throws(LauncherError) in _ = try VerifyCommand.report(disk.tree, key: key, json: false, showProgress: false) }
        #expect(error?.code == .signatureMismatch && error?.message == "\(disk.manifest): signature check failed: the tree manifest is not signed")
        #expect(try VerifyCommand.report(disk.tree, key: nil, json: false, showProgress: false).hasSuffix(", partly signed (not checked))"))
        var unsignedMembers = SampleTree()
        unsignedMembers.key = key
        try disk.write(unsignedMembers)
        let member = launcherError { () throws(LauncherError) in _ = try VerifyCommand.report(disk.tree, key: key, json: false, showProgress: false) }
        #expect(member?.code == .signatureMismatch && member?.message.hasPrefix("\(disk.member(1000)): ") == true)
    }

    @Test func lsListsTreesBesideImagesAndSkipsTemporaries() throws {
        let disk = try TreeOnDisk()
        defer { disk.remove() }
        try disk.writeFile(disk.directory + "/sample-4242-0003.stasis", sampleImage().bytes)
        // A killed checkpoint's temporary directory, and a directory named like an image without a manifest.
        #expect(mkdir(disk.directory + "/.sh-1000.tmp.d", 0o700) == 0)
        try disk.writeFile(disk.directory + "/.sh-1000.tmp.d/1000.stasis", sampleImage(pid: 1000).bytes)
        #expect(mkdir(disk.directory + "/empty-1-0001.stasis", 0o700) == 0)
        let size = [disk.manifest, disk.member(1000), disk.member(1001)].reduce(0) { total, path in
            var st = stat()
            return total + (stat(path, &st) == 0 ? Int(st.st_size) : 0)
        }
        let rows = try ListCommand.rows(disk.directory, full: false, json: false)
        #expect(rows.count == 3, "\(rows)")
        #expect(rows.contains("sh-1000-0002.stasis  /bin/sh  pid 1000  #2  \(formatTime(0))  \(size) bytes  tree of 3 processes  ok"), "\(rows)")
        #expect(rows.contains { $0.hasPrefix("sample-4242-0003.stasis  /usr/bin/sample  pid 4242  #3  ") && $0.hasSuffix("ok") })
        #expect(rows.contains { $0.hasPrefix("empty-1-0001.stasis  CORRUPT  modified ") && $0.contains("without a tree manifest") })
        #expect(try ListCommand.rows(disk.directory, full: true, json: false) == rows)
        let json = try ListCommand.rows(disk.directory, full: true, json: true)
        #expect(json.contains("{\"image\": \"\(disk.tree)\", \"program\": \"/bin/sh\", \"pid\": 1000, \"sequence\": 2, \"time_ns\": 0, "
            + "\"size\": \(size), \"chain_length\": 1, \"processes\": 3, \"ok\": true}"), "\(json)")
        #expect(json.contains { $0.contains("empty-1-0001.stasis") && $0.contains("\"processes\": 0, \"ok\": false, \"error\": ") })
        #expect(json.contains { $0.contains("sample-4242-0003.stasis") && !$0.contains("processes") })
    }

    @Test func theManifestOrAPlainDirectoryIsNotTakenForAnImage() throws {
        let disk = try TreeOnDisk()
        defer { disk.remove() }
        for error in [launcherError { () throws(LauncherError) in _ = try InspectCommand.render(disk.manifest, json: false) },
                      launcherError { () throws(LauncherError) in _ = try VerifyCommand.report(disk.manifest, key: nil, json: false, showProgress: false) }] {
            #expect(error?.code == .badImage && error?.message == "\(disk.manifest) is the manifest of a tree checkpoint, not a process's "
                + "image: name its directory, \(disk.tree)", "\(String(describing: error?.message))")
        }
        let plain = launcherError { () throws(LauncherError) in _ = try InspectCommand.render(disk.directory, json: false) }
        #expect(plain?.code == .badImage && plain?.message.hasPrefix("\(disk.directory) is a directory without a tree manifest (tree): ") == true)
    }

    @Test func compactRefusesATreeAndAMemberInPlace() throws {
        let disk = try TreeOnDisk()
        defer { disk.remove() }
        let tree = launcherError { () throws(LauncherError) in _ = try CompactCommand.compact(disk.tree, key: nil) }
        #expect(tree?.code == .usage && tree?.message == "\(disk.tree) is a directory (a tree checkpoint?): compact takes one image file")
        // A full member is left as it is (nothing to compact), as any full image.
        #expect(try CompactCommand.compact(disk.member(1000), key: nil) == disk.member(1000))
        #expect(stasisMain(["compact", disk.tree]) == ExitCode.usage.rawValue)
    }
}

