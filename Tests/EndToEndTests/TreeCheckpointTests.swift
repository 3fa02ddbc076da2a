import Glibc
import StasisImage
import Testing

/// A process with children is checkpointed with them: the image is a directory holding the manifest
/// (`tree`) and one image per live process; a child that exited and was not yet waited for is in the
/// manifest as a zombie with its status (restarting trees: ProcessTreeTests).
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct TreeCheckpointTests {
    @Test(.timeLimit(.minutes(3))) func aParentIsCheckpointedWithItsChildAndItsZombie() throws {
        let scratch = Scratch()
        let binary = try compileFixture("parent", into: scratch.path)
        let output = scratch.file("out")
        func text() -> String { (try? String(contentsOfFile: output)) ?? "" }
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", scratch.path, "--", binary], outputPath: output)
        defer { program.killAndReap() }
        try waitUntil("READY") { text().contains("READY") }
        let child = text().split(separator: "\n").first { $0.hasPrefix("READY") }.flatMap { Int32($0.dropFirst(6)) } ?? -1

        let (running, runningText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(running == 0, "\(runningText)")
        let tree = try manifest(in: lastLine(runningText))
        #expect(tree.processes.map(\.pid) == [program.pid, child])
        #expect(tree.processes.map(\.state) == [.running, .running])
        #expect(tree.processes[1].ppid == program.pid && tree.root.isRoot)
        for process in tree.processes {
            let member = try Image.decode(from: try fileSource(lastLine(runningText) + "/" + process.imageName))
            #expect(member.header.pid == process.pid && UInt64(member.header.sequence) == tree.header.sequence)
        }

        kill(program.pid, SIGHUP)  // the child exits, unreaped: a zombie
        try waitUntil("the child is a zombie") {
            ((try? String(contentsOfFile: "/proc/\(child)/stat")) ?? "").contains(") Z ")
        }
        let (zombie, zombieText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(zombie == 0, "\(zombieText)")
        let withZombie = try manifest(in: lastLine(zombieText))
        #expect(withZombie.processes.map(\.state) == [.running, .zombie])
        #expect(withZombie.processes[1].exitStatus == SIGTERM, "killed by SIGTERM, as waitpid will say")
        #expect(access(lastLine(zombieText) + "/\(child).stasis", F_OK) != 0, "a zombie has no image")
        let (json, jsonText) = try Stasis.run(["checkpoint", "--json", String(program.pid)], in: scratch.path)
        #expect(json == 0 && jsonText.contains("\"processes\": 2"), "\(jsonText)")

        kill(program.pid, SIGUSR1)  // reaped: no children left, a single image again
        try waitUntil("REAPED") { text().contains("REAPED") }
        let (alone, aloneText) = try Stasis.run(["checkpoint", String(program.pid)], in: scratch.path)
        #expect(alone == 0, "\(aloneText)")
        #expect(try Image.decode(from: try fileSource(lastLine(aloneText))).header.pid == program.pid)
        #expect(opendirNames(scratch.path).filter { $0.hasPrefix(".") && $0.contains(".tmp") }.isEmpty, "no leftovers")
        program.send(SIGTERM)
        #expect(try program.wait() == .exited(0))
        #expect(text().contains("REAPED status 15") && text().contains("PASS"), "\(text())")
    }

    private func fileSource(_ path: String) throws -> ByteArraySource {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError.io("cannot open \(path)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return ByteArraySource(bytes)
    }

    private func lastLine(_ text: String) -> String {
        String(text.split(separator: "\n").last ?? "")
    }

    private func manifest(in directory: String) throws -> TreeManifest {
        try TreeManifest.decode(from: try fileSource(directory + "/" + TreeManifest.fileName))
    }
}
