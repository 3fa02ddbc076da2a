import StasisImage

/// `stasis verify TREE_DIR`: a tree checkpoint checked whole.
///
/// Algorithm:
///   1. the manifest DIR/tree decodes (header, CRCs, TREE_PROCESS records, the tree's shape);
///      with --key its signature matches;
///   2. for each process with an image, in manifest order: DIR/PID.stasis exists, has the size and
///      header CRC the manifest records and the pid (TreeDirectory.checkMember), before any of its
///      pages is read; then it verifies as one image does (records, every page CRC, its chain, its
///      signature with --key), and its SHARED_DESCRIPTION records name members before it;
///   3. files in DIR the manifest does not name are ignored.
/// The first failure ends it: exit 3 for anything damaged or missing, 11 for a signature, 12 for a
/// member's incremental chain.
extension VerifyCommand {
    struct VerifiedTree {
        let tree: TreeDirectory
        let members: [(process: TreeProcessRecord, path: String, image: Image, size: UInt64)]
        var storedBytes: UInt64 { members.reduce(0) { $0 + $1.image.storedBytes } }
        var size: UInt64 { tree.manifestSize + members.reduce(0) { $0 + $1.size } }
        /// Every member and the manifest carry a signature.
        var isSigned: Bool { tree.isSigned && members.allSatisfy { $0.image.signature != nil } }
    }

    static func verifyTree(_ path: String, showProgress: Bool, key: [UInt8]?) throws(LauncherError) -> VerifiedTree {
        let tree = try TreeDirectory(path: path)
        if let key { try tree.checkSignature(key: key) }
        var images: [Int32: Image] = [:]
        var members: [(process: TreeProcessRecord, path: String, image: Image, size: UInt64)] = []
        for process in tree.manifest.members {
            let memberPath = try tree.checkMember(process)
            let (image, size) = try verify(memberPath, showProgress: showProgress, key: key)
            try tree.checkSharedDescriptions(process, image, owners: images)
            images[process.pid] = image
            members.append((process, memberPath, image, size))
        }
        return VerifiedTree(tree: tree, members: members)
    }

    /// The line a verified tree prints: text, or one JSON object with a `members` array.
    static func treeReport(_ verified: VerifiedTree, key: [UInt8]?, json asJSON: Bool) -> String {
        let manifest = verified.tree.manifest
        let chain = verified.members.map { $0.image.parent?.chainLength ?? 1 }.max() ?? 1
        if asJSON {
            let members = verified.members.map { m in
                let signed = m.image.signature != nil
                return "{\"image\": \"\(jsonEscape(m.path))\", \"pid\": \(m.process.pid), \"ok\": true, \"size\": \(m.size), "
                    + "\"stored_bytes\": \(m.image.storedBytes), \"chain_length\": \(m.image.parent?.chainLength ?? 1), "
                    + "\"signed\": \(signed), \"signature_checked\": \(signed && key != nil)}"
            }
            return "{\"image\": \"\(jsonEscape(verified.tree.path))\", \"ok\": true, \"size\": \(verified.size), "
                + "\"stored_bytes\": \(verified.storedBytes), \"chain_length\": \(chain), \"signed\": \(verified.isSigned), "
                + "\"signature_checked\": \(verified.isSigned && key != nil), \"processes\": \(manifest.processes.count), "
                + "\"members\": [\(members.joined(separator: ", "))]}"
        }
        let zombies = manifest.processes.count - verified.members.count
        let areas = verified.members.reduce(0) { $0 + $1.image.memoryAreas.count }
        let threads = verified.members.reduce(0) { $0 + $1.image.threads.count }
        let incremental = chain > 1 ? ", incremental: up to \(chain) images in a member's chain" : ""
        // An unsigned member under a signed manifest (or the other way) cannot pass --key; without it, say so.
        let signature = key != nil ? ", signatures ok"
            : verified.isSigned ? ", signed (HMAC-SHA256; not checked: give --key FILE)"
            : verified.tree.isSigned || verified.members.contains(where: { $0.image.signature != nil }) ? ", partly signed (not checked)"
            : ""
        return "\(verified.tree.path): ok (tree of \(InspectCommand.counted(manifest.processes.count, "process", "processes")): "
            + "\(InspectCommand.counted(verified.members.count, "image")), \(InspectCommand.counted(zombies, "zombie")); "
            + "\(areas) memory areas, \(threads) threads, \(verified.storedBytes) bytes of pages\(incremental)\(signature))"
    }
}
