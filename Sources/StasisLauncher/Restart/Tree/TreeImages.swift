import Glibc
import StasisImage
import StasisSystem

/// A tree checkpoint's directory, decoded and checked for restart (Docs/ARCHITECTURE.md 3.6, step 1): the
/// manifest, and every live process's image with every check a single image gets at restart (owner,
/// chain, CPU, files, --key), each bound to the manifest by its size and header CRC (TreeDirectory).
struct TreeImages {
    struct Member {
        let process: TreeProcessRecord
        let source: FileImageSource
        let image: Image
        let chain: ImageChain
    }

    let directory: String
    let manifest: TreeManifest
    /// The processes with an image, in manifest order (the root first).
    let members: [Member]

    var root: Member { members[0] }

    /// Opens the tree (TreeDirectory: the manifest, each member bound to it by size, header CRC and pid,
    /// SHARED_DESCRIPTION records against the members before), then every member's restart checks.
    init(directory path: String, options: RestartOptions, overrides: [Int32: DescriptorOverride]) throws(LauncherError) {
        let tree = try TreeDirectory(path: path)
        directory = tree.path
        manifest = tree.manifest
        if getuid() != 0, let owner = try? fileStatus(tree.manifestPath).st_uid, owner != getuid() {  // readable: just decoded
            throw LauncherError(.permissionDenied, "\(tree.manifestPath) belongs to uid \(owner); only its owner or root may restart it")
        }
        let key = try readKeyFile(ifGiven: options.keyPath)
        if let key { try tree.checkSignature(key: key) }
        var members: [Member] = []
        var images: [Int32: Image] = [:]
        for process in manifest.members {
            let source = try FileImageSource(path: try tree.checkMember(process))
            let image = try source.decode()
            try tree.checkSharedDescriptions(process, image, owners: images)
            images[process.pid] = image
            let (checked, chain) = try RestartCommand.checkImage(source, image: image, options: options,
                                                                 overrides: process.isRoot ? overrides : [:])
            if let key { try checkSignature(checked, source, key: key) }
            members.append(Member(process: process, source: source, image: checked, chain: chain))
        }
        self.members = members
    }
}
