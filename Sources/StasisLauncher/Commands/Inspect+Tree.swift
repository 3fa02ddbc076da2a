import StasisImage

/// `stasis inspect TREE_DIR`: the processes of a tree checkpoint as a table (children indented under
/// their parent), then each member image as `inspect` shows one image. `--json`: one object with the
/// manifest's header fields, a `processes` array and a `members` array of the single-image objects
/// (Docs/JSON-OUTPUT.md).
extension InspectCommand {
    static func renderTree(_ tree: TreeDirectory, json asJSON: Bool) throws(LauncherError) -> String {
        let members = try tree.decodeMembers()
        let size = TreeDirectory.diskSize(of: tree.path)
        return asJSON ? treeJSON(tree, members, size: size.bytes) : treeText(tree, members, size: size)
    }

    /// The processes in tree order (depth first, each parent's children in manifest order) with their depth.
    static func treeOrder(_ manifest: TreeManifest) -> [(process: TreeProcessRecord, depth: Int)] {
        var order: [(TreeProcessRecord, Int)] = []
        var placed = Set<Int32>()
        func visit(_ process: TreeProcessRecord, _ depth: Int) {
            guard placed.insert(process.pid).inserted else { return }
            order.append((process, depth))
            for child in manifest.children(of: process.pid) { visit(child, depth + 1) }
        }
        visit(manifest.root, 0)
        // TreeManifest.validate puts every parent first, so all are reached; a process that is not would be
        // listed at the end rather than dropped.
        for process in manifest.processes where !placed.contains(process.pid) { order.append((process, 1)) }
        return order
    }

    /// "1 image", "2 images".
    static func counted(_ n: Int, _ one: String, _ many: String? = nil) -> String { "\(n) " + (n == 1 ? one : many ?? one + "s") }

    /// A zombie's wait status (waitpid encoding) in words.
    static func exitDescription(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)" + (status & 0x80 != 0 ? ", core dumped" : "")
    }

    /// What the table's COMMAND column adds after the name: flags, signals, a zombie's status.
    static func notes(_ process: TreeProcessRecord) -> [String] {
        var notes: [String] = []
        if process.flags.contains(.root) { notes.append("root") }
        if process.flags.contains(.childSubreaper) { notes.append("subreaper") }
        if process.flags.contains(.ownGroup) { notes.append("own group") }
        if process.flags.contains(.ownSession) { notes.append("own session") }
        if process.exitSignal != 17 { notes.append("exit signal \(process.exitSignal)") }
        if process.parentDeathSignal != 0 { notes.append("death signal \(process.parentDeathSignal)") }
        if process.state == .zombie { notes.append(exitDescription(process.exitStatus)) }
        return notes
    }

    static func treeText(_ tree: TreeDirectory, _ members: [TreeDirectory.Member], size: (bytes: UInt64, files: Int)) -> String {
        let manifest = tree.manifest
        let h = manifest.header
        let zombies = manifest.processes.count - manifest.members.count
        let signed = tree.isSigned ? ", signed (HMAC-SHA256; `stasis verify --key FILE` checks it)" : ""
        var out = """
            tree:       format \(h.version), x86-64, \(counted(manifest.processes.count, "process", "processes")) (\(counted(members.count, "image")), \(counted(zombies, "zombie"))), \(size.bytes) bytes in \(size.files) files\(signed)
            program:    \(h.program)
            pid:        \(h.pid) (uid \(h.uid)), checkpoint #\(h.sequence), taken at \(formatTime(Int64(clamping: h.timeNanoseconds)))
            kernel:     \(h.kernelRelease)


            """
        var rows = [["PID", "PPID", "PGID", "SID", "STATE", "IMAGE", "COMMAND"]]
        for (process, depth) in treeOrder(manifest) {
            let indent = depth == 0 ? "" : String(repeating: "   ", count: depth - 1) + "\\_ "
            let notes = notes(process)
            rows.append([String(process.pid), String(process.ppid), String(process.pgid), String(process.sid),
                         "\(process.state)", process.hasImage ? "\(process.imageBytes) bytes" : "-",
                         indent + process.comm + (notes.isEmpty ? "" : " [" + notes.joined(separator: ", ") + "]")])
        }
        let widths = (0..<6).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            out += (0..<6).map { pad(row[$0], widths[$0]) }.joined(separator: "  ") + "  " + row[6] + "\n"
        }
        for member in members {
            out += "\n== process \(member.process.pid) (\(member.process.comm)): \(member.path)\n"
            out += text(member.image, size: member.size)
        }
        return out
    }

    static func treeJSON(_ tree: TreeDirectory, _ members: [TreeDirectory.Member], size: UInt64) -> String {
        let manifest = tree.manifest
        let h = manifest.header
        func str(_ s: String) -> String { "\"\(jsonEscape(s))\"" }
        var parts = headerJSONFields(h, size: size)
        parts.append("\"kernel\": \(str(h.kernelRelease))")
        parts.append("\"signed\": \(tree.isSigned)")
        let processes = manifest.processes.map { p in
            var flags: [String] = []
            if p.flags.contains(.root) { flags.append(str("root")) }
            if p.flags.contains(.childSubreaper) { flags.append(str("child_subreaper")) }
            if p.flags.contains(.ownGroup) { flags.append(str("own_group")) }
            if p.flags.contains(.ownSession) { flags.append(str("own_session")) }
            return "{\"pid\": \(p.pid), \"ppid\": \(p.ppid), \"pgid\": \(p.pgid), \"sid\": \(p.sid), \"state\": \(str("\(p.state)")), "
                + (p.state == .zombie ? "\"exit_status\": \(p.exitStatus), " : "")
                + "\"exit_signal\": \(p.exitSignal), \"death_signal\": \(p.parentDeathSignal), \"command\": \(str(p.comm)), "
                + "\"flags\": [\(flags.joined(separator: ", "))], \"image\": \(p.hasImage ? str(p.imageName) : "null"), "
                + "\"image_size\": \(p.imageBytes)}"
        }
        parts.append("\"processes\": [\(processes.joined(separator: ", "))]")
        // Each member: the object `inspect --json IMAGE` prints for it, with its file name first.
        let objects = members.map { "{\"image\": \(str($0.process.imageName)), " + json($0.image, size: $0.size).dropFirst() }
        parts.append("\"members\": [\(objects.joined(separator: ", "))]")
        return "{" + parts.joined(separator: ", ") + "}"
    }
}
