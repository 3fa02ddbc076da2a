import Glibc
import StasisImage
import StasisSystem

/// A tree checkpoint on disk (Docs/IMAGE-FORMAT.md 7), as the read-only commands open it:
///
///   DIR/COMM-PID-SEQ.stasis/     the path given (a directory)
///     tree                       TreeManifest: one TREE_PROCESS per process, root first
///     PID.stasis                 a member: an ordinary image, one per process that is not a zombie
///
/// Each member is checked against the manifest (size, header CRC, pid) before its records are read,
/// and its SHARED_DESCRIPTION records against the members before it. Files the manifest does not
/// name are ignored. Every failure is a `badImage` error naming the file, except a signature (exit 11).
struct TreeDirectory {
    /// The directory, without a trailing slash.
    let path: String
    let manifest: TreeManifest
    /// The manifest file's size.
    let manifestSize: UInt64
    /// Its END record's signature, when written with a key (checked by `checkSignature`).
    var isSigned: Bool { manifest.signature != nil }

    /// A member decoded (records only) and bound to the manifest.
    struct Member {
        let process: TreeProcessRecord
        let path: String
        let size: UInt64
        let image: Image
    }

    /// Whether `path` is a directory (symlinks followed): a tree checkpoint, or meant as one.
    static func isDirectory(_ path: String) -> Bool {
        guard let st = try? fileStatus(path) else { return false }  // missing or unreadable: the image open says why
        return st.st_mode & S_IFMT == S_IFDIR
    }

    var manifestPath: String { path + "/" + TreeManifest.fileName }

    /// Opens and decodes DIR/tree.
    init(path: String) throws(LauncherError) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.path = trimmed
        let manifestPath = trimmed + "/" + TreeManifest.fileName
        do {
            _ = try fileStatus(manifestPath)
        } catch where error == .noEntry {
            throw LauncherError(.badImage, "\(trimmed) is a directory without a tree manifest (\(TreeManifest.fileName)): "
                + "not a tree checkpoint; name an image file or a COMM-PID-SEQ.stasis directory (`stasis ls DIR` lists a directory's images)")
        } catch {
            throw LauncherError(.badImage, "cannot read \(manifestPath): \(error)")
        }
        let source = try FileImageSource(path: manifestPath)
        do {
            manifest = try TreeManifest.decode(from: source)
        } catch {
            throw LauncherError(.badImage, "\(manifestPath): \(error)")
        }
        manifestSize = source.size
    }

    func memberPath(_ process: TreeProcessRecord) -> String { path + "/" + process.imageName }

    /// `--key`: the manifest's signature must be this key's (the members' are checked as images).
    func checkSignature(key: [UInt8]) throws(LauncherError) {
        let source = try FileImageSource(path: manifestPath)
        do {
            try manifest.verifySignature(from: source, key: key)
        } catch {
            throw LauncherError(.signatureMismatch, "\(manifestPath): \(error)")
        }
    }

    /// The member of `process`, opened and checked to be the one the manifest names (present, its size,
    /// header CRC and pid) without reading its records. Returns its path.
    @discardableResult
    func checkMember(_ process: TreeProcessRecord) throws(LauncherError) -> String {
        let memberPath = memberPath(process)
        do {
            _ = try fileStatus(memberPath)
        } catch where error == .noEntry {
            throw LauncherError(.badImage, "\(path): corrupt tree checkpoint: member \(process.imageName) "
                + "(process \(process.pid), \(process.comm)) is missing")
        } catch {
            throw LauncherError(.badImage, "cannot read \(memberPath): \(error)")
        }
        let source = try FileImageSource(path: memberPath)
        do throws(ImageError) {
            try manifest.checkMemberSize(of: process, size: source.size)
        } catch {
            throw LauncherError(.badImage, "\(path): \(error)")
        }
        let header: ImageHeader
        do {
            header = try ImageHeader.decode(from: source)
        } catch {
            throw LauncherError(.badImage, "\(memberPath): \(error)")
        }
        do throws(ImageError) {
            try manifest.checkMemberHeader(of: process, header: header)
        } catch {
            throw LauncherError(.badImage, "\(path): \(error)")
        }
        return memberPath
    }

    /// A member's SHARED_DESCRIPTION records name members before it and their descriptors (`owners`: those
    /// decoded so far, by pid).
    func checkSharedDescriptions(_ process: TreeProcessRecord, _ image: Image, owners: [Int32: Image]) throws(LauncherError) {
        do {
            try manifest.checkSharedDescriptions(of: process, image: image, owners: owners)
        } catch {
            throw LauncherError(.badImage, "\(path): \(error)")
        }
    }

    /// Every member checked and decoded (records only, no page data), in manifest order: what `inspect`
    /// and `ls` read.
    func decodeMembers() throws(LauncherError) -> [Member] {
        var members: [Member] = []
        var images: [Int32: Image] = [:]
        for process in manifest.members {
            let memberPath = try checkMember(process)
            let source = try FileImageSource(path: memberPath)
            let image = try source.decode()
            try checkSharedDescriptions(process, image, owners: images)
            images[process.pid] = image
            members.append(Member(process: process, path: memberPath, size: source.size, image: image))
        }
        return members
    }

    /// The bytes of the regular files in `directory` (not recursive): a tree checkpoint's size on disk,
    /// readable or not. Entries that vanish meanwhile count 0.
    static func diskSize(of directory: String) -> (bytes: UInt64, files: Int) {
        guard let names = try? FileSystem.directoryEntries(directory) else { return (0, 0) }  // unreadable: nothing counted
        var total: UInt64 = 0
        var files = 0
        for name in names {
            // lstat: a symlink in the directory is not the checkpoint's bytes. ENOENT (removed meanwhile) counts 0.
            var st = stat()
            guard lstat(directory + "/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            total += UInt64(st.st_size)
            files += 1
        }
        return (total, files)
    }
}
