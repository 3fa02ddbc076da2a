import Glibc
import StasisImage
import StasisSystem

/// `stasis verify IMAGE`: every check a restart makes, and every byte's checksum, without restoring.
enum VerifyCommand {
    static let help = """
        usage: stasis verify [--key FILE] [--json] IMAGE|TREE_DIR...

        Checks each image completely without restoring it: header, every record's checksum and fields,
        and the checksum of all page data. An incremental image's parents (its chain) must be present and
        be the images it names (exit 12), and verify too. Exit 0 when all verify, 3 otherwise. Progress
        goes to stderr on a terminal. With --key, the HMAC-SHA256 signature must match FILE's key too
        (exit 11). A tree checkpoint (a COMM-PID-SEQ.stasis directory): its manifest, then every
        process's image as above, each the very one the manifest names (size and header checksum).
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: ["--key"], flags: ["--help", "--json"], command: "verify")
        let key = try readKeyFile(ifGiven: options.values["--key"])
        if options.flags.contains("--help") {
            printOut(help)
            return
        }
        guard !options.positional.isEmpty else { throw LauncherError(.usage, "verify needs an IMAGE") }
        var failed: LauncherError?
        let asJSON = options.flags.contains("--json")
        for path in options.positional {
            do throws(LauncherError) {
                printOut(try report(path, key: key, json: asJSON, showProgress: FileDescriptor(rawValue: 2).isTerminal))
            } catch {
                if asJSON {
                    printOut("{\"image\": \"\(jsonEscape(path))\", \"ok\": false, \"error\": \"\(jsonEscape(error.message))\"}")
                } else if options.positional.count > 1 {
                    printError("stasis: \(error.message)")
                }
                failed = error
            }
        }
        guard let failed else { return }
        if options.positional.count == 1 && !options.flags.contains("--json") { throw failed }
        throw LauncherError(failed.code, "some images did not verify")
    }

    /// Verifies one image, or a tree checkpoint when `path` is a directory, and returns the line a success
    /// prints (text or --json).
    static func report(_ path: String, key: [UInt8]?, json asJSON: Bool, showProgress: Bool) throws(LauncherError) -> String {
        if TreeDirectory.isDirectory(path) {
            return treeReport(try verifyTree(path, showProgress: showProgress, key: key), key: key, json: asJSON)
        }
        let (image, size) = try verify(path, showProgress: showProgress, key: key)
        let signed = image.signature != nil
        if asJSON {
            return "{\"image\": \"\(jsonEscape(path))\", \"ok\": true, \"size\": \(size), \"stored_bytes\": \(image.storedBytes), \"chain_length\": \(image.parent?.chainLength ?? 1), "
                + "\"signed\": \(signed), \"signature_checked\": \(signed && key != nil)}"
        }
        let chain = image.parent.map { ", incremental: \($0.chainLength) images in its chain" } ?? ""
        // Without --key a signature cannot be checked: say there is one, and how to check it.
        let signature = !signed ? "" : key != nil ? ", signature ok" : ", signed (HMAC-SHA256; not checked: give --key FILE)"
        return "\(path): ok (\(image.memoryAreas.count) memory areas, \(image.threads.count) threads, \(image.storedBytes) bytes of pages\(chain)\(signature))"
    }

    static func verify(_ path: String, showProgress: Bool, key: [UInt8]? = nil, followChain: Bool = true)
        throws(LauncherError) -> (Image, UInt64)
    {
        let source = try FileImageSource(path: path)
        let image = try source.decode()
        if let key { try checkSignature(image, source, key: key) }
        let total = max(image.storedBytes, 1)
        var lastShown: UInt64 = 0
        do {
            try image.verifyPageData(from: source) { checked in
                guard showProgress, checked - lastShown >= 64 << 20 || checked == total else { return }
                lastShown = checked
                printError("\r\(path): \(checked * 100 / total)% of \(total >> 20) MiB checked")
            }
        } catch {
            throw LauncherError(.badImage, "\(path): \(error)")
        }
        if showProgress && lastShown > 0 { printError("") }
        if followChain && image.parent != nil {
            // The chain: each parent present, the one named, and intact.
            let chain = try ImageChain.load(image, source: source)
            for member in chain.members.dropFirst() {
                _ = try verify(member.source.path, showProgress: showProgress, key: key, followChain: false)
            }
        }
        return (image, source.size)
    }
}
