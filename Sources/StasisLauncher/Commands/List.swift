import Glibc
import StasisImage
import StasisSystem

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
        let names: [String]
        do {
            names = try FileSystem.directoryEntries(directory).filter { $0.hasSuffix(".stasis") && !$0.hasPrefix(".") }
        } catch {
            throw LauncherError(.usage, "cannot read directory \(directory): \(error)")
        }
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
            let st = (try? fileStatus(path)) ?? stat()  // gone meanwhile: listed with size 0
            let fileSize = UInt64(st.st_size)
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
