import Glibc
import Testing

/// `inspect`, `verify` and `ls` on tree checkpoints the agent wrote: a process with a child (then with
/// a zombie), signed; then the tree damaged as a copy or a cleanup could damage it.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct TreeToolsTests {
    @Test(.timeLimit(.minutes(3))) func readOnlyCommandsReadARealTreeAndFindItsDamage() throws {
        let scratch = Scratch()
        let binary = try compileFixture("parent", into: scratch.path)
        let output = scratch.file("out")
        let images = scratch.file("images")
        #expect(mkdir(images, 0o700) == 0)
        let key = scratch.file("key")
        try writeBytes(Array("a key for the tree test".utf8), to: key)
        func text() -> String { (try? String(contentsOfFile: output)) ?? "" }
        let program = try ChildProcess(Stasis.launcher, ["run", "--dir", images, "--key", key, "--", binary], outputPath: output)
        var child: pid_t = -1
        defer {
            if child > 0 { kill(child, SIGKILL) }  // the fixture's child: ours to end, by PID (a zombie ignores it)
            program.killAndReap()
        }
        try waitUntil("READY") { text().contains("READY") }
        child = text().split(separator: "\n").first { $0.hasPrefix("READY") }.flatMap { pid_t($0.dropFirst(6)) } ?? -1
        let pid = program.pid

        var (code, out) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
        try #require(code == 0, "\(out)")
        let first = out.split(separator: "\n").last.map(String.init) ?? ""
        #expect(first.hasSuffix("-\(pid)-0001.stasis"))
        #expect(access(first + "/tree", R_OK) == 0 && access(first + "/\(pid).stasis", R_OK) == 0
            && access(first + "/\(child).stasis", R_OK) == 0, "\(opendirNames(first))")

        (code, out) = try Stasis.run(["inspect", first], in: scratch.path)
        #expect(code == 0, "\(out)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("tree:       format 3, x86-64, 2 processes (2 images, 0 zombies), ") == true, "\(out)")
        #expect(lines.contains { $0.hasPrefix("\(pid) ") && $0.contains(" running ") && $0.hasSuffix("parent [root, own group, own session]") },
                "\(out)")
        #expect(lines.contains { $0.hasPrefix("\(child) ") && $0.contains("\\_ parent") }, "\(out)")
        #expect(lines.contains("== process \(pid) (parent): \(first)/\(pid).stasis"), "\(out)")
        #expect(lines.contains { $0.hasPrefix("  1: regular \(output) ") && $0.hasSuffix("(same open file as process \(pid) fd 1)") },
                "the child's stdout is the parent's: \(out)")

        (code, out) = try Stasis.run(["inspect", "--json", first], in: scratch.path)
        #expect(code == 0 && out.contains("\"processes\": [{\"pid\": \(pid), \"ppid\": ")
            && out.contains("\"members\": [{\"image\": \"\(pid).stasis\", \"format\": 3, "), "\(out)")

        (code, out) = try Stasis.run(["verify", "--key", key, first], in: scratch.path)
        #expect(code == 0 && out.hasPrefix("\(first): ok (tree of 2 processes: 2 images, 0 zombies; ")
            && out.contains(", signatures ok)"), "\(out)")
        (code, out) = try Stasis.run(["verify", first + "/\(child).stasis"], in: scratch.path)
        #expect(code == 0 && out.hasPrefix("\(first)/\(child).stasis: ok ("), "a member alone: \(out)")
        (code, out) = try Stasis.run(["ls", images], in: scratch.path)
        #expect(code == 0 && out.hasPrefix("parent-\(pid)-0001.stasis  \(binary)  pid \(pid)  #1  ")
            && out.hasSuffix("  tree of 2 processes  ok\n"), "\(out)")

        // The child exits unreaped: the next tree holds a zombie, and no image of it.
        kill(pid, SIGHUP)
        try waitUntil("the child is a zombie") { ((try? String(contentsOfFile: "/proc/\(child)/stat")) ?? "").contains(") Z ") }
        (code, out) = try Stasis.run(["checkpoint", String(pid)], in: scratch.path)
        try #require(code == 0, "\(out)")
        let second = out.split(separator: "\n").last.map(String.init) ?? ""
        #expect(access(second + "/\(child).stasis", F_OK) != 0)
        (code, out) = try Stasis.run(["inspect", second], in: scratch.path)
        #expect(code == 0 && out.contains(" 2 processes (1 image, 1 zombie), "), "\(out)")
        #expect(out.split(separator: "\n").contains { $0.hasPrefix("\(child) ") && $0.contains(" zombie ")
            && $0.hasSuffix(", killed by signal 15]") }, "\(out)")
        (code, out) = try Stasis.run(["ls", "--full", "--json", images], in: scratch.path)
        #expect(code == 0 && out.split(separator: "\n").count == 2 && !out.contains("\"ok\": false")
            && out.contains("\"processes\": 2, \"ok\": true"), "\(out)")

        // Damage: the root's image of the first checkpoint put in the second; the first's child missing.
        try writeBytes(try readBytes(first + "/\(pid).stasis"), to: second + "/\(pid).stasis")
        (code, out) = try Stasis.run(["verify", second], in: scratch.path)
        #expect(code == 3 && out.contains("\(second): corrupt tree checkpoint: member \(pid).stasis "), "\(out)")
        unlink(first + "/\(child).stasis")
        (code, out) = try Stasis.run(["verify", "--json", first], in: scratch.path)
        #expect(code == 3 && out.contains("\"ok\": false, \"error\": \"\(first): corrupt tree checkpoint: member \(child).stasis "
            + "(process \(child), parent) is missing\""), "\(out)")
        (code, out) = try Stasis.run(["ls", images], in: scratch.path)
        #expect(code == 0 && out.split(separator: "\n").allSatisfy { $0.contains("  CORRUPT  modified ") }, "\(out)")

        kill(pid, SIGUSR1)  // reaps the zombie
        try waitUntil("REAPED") { text().contains("REAPED") }
        program.send(SIGTERM)
        #expect(try program.wait() == .exited(0))
    }
}
