import CStasisABI
import Glibc
import StasisImage
import StasisSystem

/// `stasis compact IMAGE`: an incremental image made whole. Its inherited pages are copied in from
/// its parents and the PARENT record dropped; everything else (header, sequence, time, records) stays,
/// so the program's next incremental image can still name it as its parent, and its old parents are
/// no longer needed (`--keep` then removes them). In place by default (temp, fsync, rename over it).
enum CompactCommand {
    static let help = """
        usage: stasis compact [--key FILE] [--output OUT] IMAGE

        Makes an incremental image standalone: copies the pages it inherits from its chain of parent
        images into it and drops the reference to its parent. Replaces IMAGE atomically (or writes OUT).
        A signed chain needs --key FILE to sign the result. `stasis checkpoint` does this by itself once
        a chain reaches the program's --max-chain.
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: ["--key", "--output"], flags: ["--help", "--json"], command: "compact")
        if options.flags.contains("--help") {
            printOut(help)
            return
        }
        guard options.positional.count == 1 else { throw LauncherError(.usage, "compact needs one IMAGE") }
        let key = try readKeyFile(ifGiven: options.values["--key"])
        let path = options.positional[0]
        let written = try compact(path, output: options.values["--output"], key: key)
        printOut(written)
    }

    /// Writes the standalone image and returns its path; IMAGE unchanged if it is not incremental.
    @discardableResult
    static func compact(_ path: String, output: String? = nil, key: [UInt8]?) throws(LauncherError) -> String {
        if TreeDirectory.isDirectory(path) {
            throw LauncherError(.usage, "\(path) is a directory (a tree checkpoint?): compact takes one image file")
        }
        let source = try FileImageSource(path: path)
        let image = try source.decode()
        guard image.parent != nil else { return path }
        // A tree's manifest records each member's size: a member compacted in place would no longer be the one it names.
        let tree = ImageChain.directoryName(of: path)
        if output == nil, FileSystem.isAccessible(tree + "/" + TreeManifest.fileName, F_OK) {
            throw LauncherError(.usage, "\(path) is a member of the tree checkpoint \(tree), whose manifest records its "
                + "size: compact it with --output OUT")
        }
        if image.signature != nil && key == nil {
            throw LauncherError(.signatureMismatch, "\(path) is signed: compact it with --key FILE to sign the result")
        }
        if let key { try checkSignature(image, source, key: key) }
        let chain = try ImageChain.load(image, source: source)
        let segments = try chain.pageSegments()
        try RestartCommand.verifyParentData(chain, segments)
        let target = output ?? path
        let directory = ImageChain.directoryName(of: target)
        let temp = directory + "/.compact-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode: 0o600)
        } catch {
            throw LauncherError(.failure, "cannot create \(temp): \(error)")
        }
        var writer = ImageWriter(sink: FileImageSink(fd: fd), key: key)
        do throws(LauncherError) {
            do {
                try chain.writeStandalone(segments: segments, into: &writer)
            } catch {
                // A failed write is the sink's (its error says so); anything else is a member that did not read back.
                throw writer.sink.failed ? LauncherError(.failure, "\(error)") : LauncherError(.badImage, "\(path): \(error)")
            }
            guard fsync(fd.rawValue) == 0 else { throw LauncherError(.failure, "cannot sync \(temp): \(Errno.current)") }
        } catch {
            fd.closeAfterError()
            unlink(temp)
            throw error
        }
        do throws(Errno) {
            try fd.close()  // after fsync: an error here still means the image may not be complete
        } catch {
            unlink(temp)
            throw LauncherError(.failure, "cannot close \(temp): \(error)")
        }
        guard rename(temp, target) == 0 else {
            let error = Errno.current
            unlink(temp)
            throw LauncherError(.failure, "cannot replace \(target): \(error)")
        }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
        return target
    }
}

/// The compacted image's file: appended with write, CRC fields patched with pwrite.
struct FileImageSink: ImageSink {
    let fd: FileDescriptor
    /// Set when a write failed (as opposed to a read of the chain).
    private(set) var failed = false

    mutating func append(_ bytes: [UInt8]) throws(ImageError) {
        do { try fd.writeAll(bytes) } catch {
            failed = true
            throw .io("cannot write the compacted image: \(error)")
        }
    }

    mutating func overwrite(_ bytes: [UInt8], at offset: UInt64) throws(ImageError) {
        do { try fd.writeAll(bytes, at: offset) } catch {
            failed = true
            throw .io("cannot write the compacted image: \(error)")
        }
    }
}
