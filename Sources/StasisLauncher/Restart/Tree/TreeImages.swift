import Glibc
import StasisImage
import StasisSystem

/// A tree checkpoint's directory, decoded and checked (Docs/ARCHITECTURE.md 3.6, step 1): the manifest,
/// and every live process's image with every check a single image gets at restart (owner, chain, CPU,
/// files, --key), each bound to the manifest by its size and header CRC.
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

    /// Whether `path` is a tree checkpoint: a directory holding a manifest.
    static func isTree(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
            && FileSystem.isAccessible(path + "/" + TreeManifest.fileName, F_OK)
    }

    init(directory: String, options: RestartOptions, overrides: [Int32: DescriptorOverride]) throws(LauncherError) {
        self.directory = directory
        let manifestSource = try FileImageSource(path: directory + "/" + TreeManifest.fileName)
        do {
            manifest = try TreeManifest.decode(from: manifestSource)
        } catch {
            throw LauncherError(.badImage, "\(manifestSource.path): \(error)")
        }
        let key = try readKeyFile(ifGiven: options.keyPath)
        if getuid() != 0, let owner = try? manifestSource.descriptor.status().st_uid, owner != getuid() {  // fstat of an open fd
            throw LauncherError(.permissionDenied, "\(manifestSource.path) belongs to uid \(owner); only its owner or root may restart it")
        }
        if let key { try Self.checkManifestSignature(manifest, manifestSource, key: key) }

        var members: [Member] = []
        for process in manifest.processes where process.hasImage {
            let path = directory + "/" + process.imageName
            guard FileSystem.isAccessible(path, F_OK) else {
                throw LauncherError(.badImage, "\(path) is missing: the tree's image of process \(process.pid) (\(process.comm))")
            }
            let source = try FileImageSource(path: path)
            guard source.size == process.imageBytes else {
                throw LauncherError(.badImage, "\(path) has \(source.size) bytes, the tree manifest says \(process.imageBytes): it is not this checkpoint's image")
            }
            let image = try source.decode()
            guard image.header.headerCRC == process.imageHeaderCRC, image.header.pid == process.pid else {
                throw LauncherError(.badImage, "\(path) is not the image the tree manifest names (header checksum or PID differs)")
            }
            let (checked, chain) = try RestartCommand.checkImage(source, image: image, options: options,
                                                                 overrides: process.isRoot ? overrides : [:])
            if let key { try checkSignature(checked, source, key: key) }
            members.append(Member(process: process, source: source, image: checked, chain: chain))
        }
        self.members = members
        try checkSharedDescriptions()
    }

    /// Every SHARED_DESCRIPTION record names an fd of a process with an image that comes earlier.
    private func checkSharedDescriptions() throws(LauncherError) {
        var earlier: [Int32: Set<Int32>] = [:]
        for member in members {
            for share in member.image.sharedDescriptions {
                guard earlier[share.ownerPID]?.contains(share.ownerFD) == true else {
                    throw LauncherError(.badImage, "\(member.source.path): fd \(share.fd) is said to be process \(share.ownerPID)'s fd \(share.ownerFD), which no earlier image of the tree has")
                }
            }
            earlier[member.process.pid] = Set(member.image.fileDescriptors.map(\.fd))
        }
    }

    /// --key: the manifest's END record carries the same HMAC as an image's.
    static func checkManifestSignature(_ manifest: TreeManifest, _ source: FileImageSource, key: [UInt8]) throws(LauncherError) {
        var signed = Image()
        signed.header = manifest.header
        signed.recordOffsets = manifest.recordOffsets
        signed.endOffset = manifest.endOffset
        signed.signature = manifest.signature
        try checkSignature(signed, source, key: key)
    }
}
