import Glibc
import StasisImage

/// `stasis verify IMAGE`: every check a restart makes, and every byte's checksum, without restoring.
enum VerifyCommand {
    static let help = """
        usage: stasis verify [--key FILE] [--json] IMAGE...

        Checks each image completely without restoring it: header, every record's checksum and fields,
        and the checksum of all page data. An incremental image's parents (its chain) must be present and
        be the images it names (exit 12), and verify too. Exit 0 when all verify, 3 otherwise. Progress
        goes to stderr on a terminal. With --key, the HMAC-SHA256 signature must match FILE's key too
        (exit 11).
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: ["--key"], flags: ["--help", "--json"], command: "verify")
        let key = try options.values["--key"].map { (path) throws(LauncherError) in try RestartCommand.readKey(path) }
        if options.flags.contains("--help") {
            printOut(help)
            return
        }
        guard !options.positional.isEmpty else { throw LauncherError(.usage, "verify needs an IMAGE") }
        var failed: LauncherError?
        for path in options.positional {
            do throws(LauncherError) {
                let (image, size) = try verify(path, showProgress: isatty(2) != 0, key: key)
                let signed = image.signature != nil
                if options.flags.contains("--json") {
                    printOut("{\"image\": \"\(jsonEscape(path))\", \"ok\": true, \"size\": \(size), \"stored_bytes\": \(image.storedBytes), \"chain_length\": \(image.parent?.chainLength ?? 1), "
                        + "\"signed\": \(signed), \"signature_checked\": \(signed && key != nil)}")
                } else {
                    let chain = image.parent.map { ", incremental: \($0.chainLength) images in its chain" } ?? ""
                    // Without --key a signature cannot be checked: say there is one, and how to check it.
                    let signature = !signed ? "" : key != nil ? ", signature ok" : ", signed (HMAC-SHA256; not checked: give --key FILE)"
                    printOut("\(path): ok (\(image.memoryAreas.count) memory areas, \(image.threads.count) threads, \(image.storedBytes) bytes of pages\(chain)\(signature))")
                }
            } catch {
                if options.flags.contains("--json") {
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

    static func verify(_ path: String, showProgress: Bool, key: [UInt8]? = nil, followChain: Bool = true)
        throws(LauncherError) -> (Image, UInt64)
    {
        let source = try FileImageSource(path: path)
        let image = try source.decode()
        if let key {
            do {
                try image.verifySignature(from: source, key: key)
            } catch {
                throw LauncherError(.signatureMismatch, "\(path): \(error)")
            }
        }
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

/// `stasis ls [DIR]`: the images in a directory, newest last, with whether each one's records verify.
enum ListCommand {
    static let help = """
        usage: stasis ls [--full] [--json] [DIR]

        Lists the *.stasis images in DIR (default: the current directory), oldest first: program, PID,
        checkpoint number, time, size, and whether the image verifies (records only; --full also checks
        every page's checksum, which reads the whole image).
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: [], flags: ["--help", "--json", "--full"], command: "ls")
        if options.flags.contains("--help") {
            printOut(help)
            return
        }
        let directory = options.positional.first ?? "."
        guard let dir = opendir(directory) else {
            throw LauncherError(.usage, "cannot read directory \(directory): \(String(cString: strerror(errno)))")
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasSuffix(".stasis") && !name.hasPrefix(".") { names.append(name) }
        }
        closedir(dir)
        var rows: [(time: UInt64, line: String)] = []
        for name in names {
            let path = directory == "." ? name : directory + "/" + name
            var error: LauncherError?
            var header: ImageHeader?
            var chain: UInt32 = 1
            do throws(LauncherError) {
                if options.flags.contains("--full") {
                    let (image, _) = try VerifyCommand.verify(path, showProgress: false)
                    header = image.header
                    chain = image.parent?.chainLength ?? 1
                } else {
                    let image = try FileImageSource(path: path).decode()
                    header = image.header
                    chain = image.parent?.chainLength ?? 1
                }
            } catch let failure {
                error = failure
                header = nil  // what a damaged image claims is not shown as if it were true
            }
            // The file's own size and time, whatever its contents: a damaged image is listed with them.
            var st = stat()
            let fileSize = stat(path, &st) == 0 ? UInt64(st.st_size) : 0
            let fileTime = UInt64(max(0, Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)))
            let time = header?.timeNanoseconds ?? fileTime
            if options.flags.contains("--json") {
                // A damaged image: program "", pid/sequence 0, the file's mtime and size, and "error".
                rows.append((time, "{\"image\": \"\(jsonEscape(path))\", \"program\": \"\(jsonEscape(header?.program ?? ""))\", "
                    + "\"pid\": \(header?.pid ?? 0), \"sequence\": \(header?.sequence ?? 0), \"time_ns\": \(time), "
                    + "\"size\": \(fileSize), \"chain_length\": \(chain), \"ok\": \(error == nil)"
                    + (error.map { ", \"error\": \"\(jsonEscape($0.message))\"" } ?? "") + "}"))
            } else if let header, error == nil {
                rows.append((time, "\(name)  \(header.program)  pid \(header.pid)  #\(header.sequence)  "
                    + "\(formatTime(Int64(time)))  \(fileSize) bytes  \(chain > 1 ? "incremental (\(chain) in chain)  " : "")ok"))
            } else {
                // INCOMPLETE: the image may be fine but a parent it needs is missing or not the one named.
                let label = error?.code == .incompleteChain ? "INCOMPLETE" : "CORRUPT"
                rows.append((time, "\(name)  \(label)  modified \(formatTime(Int64(time)))  \(fileSize) bytes  "
                    + (error?.message ?? "")))
            }
        }
        for row in rows.sorted(by: { $0.time < $1.time }) { printOut(row.line) }
    }
}
