import Glibc
import StasisImage
import StasisSystem

/// `stasis ls [DIR]`: the images in a directory, newest last, with whether each one's records verify.
enum ListCommand {
    static let help = """
        usage: stasis ls [--full] [--json] [DIR]

        Lists the *.stasis images in DIR (default: the current directory), oldest first: program, PID,
        checkpoint number, time, size, and whether the image verifies (records only; --full also checks
        every page's checksum, which reads the whole image). A tree checkpoint (a *.stasis directory
        holding a tree manifest) is listed with its root's PID, its number of processes and the size of
        its files, and verifies when every process's image does and is the one its manifest names.
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: [], flags: ["--help", "--json", "--full"], command: "ls")
        if options.flags.contains("--help") {
            printOut(help)
            return
        }
        let directory = options.positional.first ?? "."
        for line in try rows(directory, full: options.flags.contains("--full"), json: options.flags.contains("--json")) {
            printOut(line)
        }
    }

    /// The lines `ls` prints for `directory`, oldest first.
    static func rows(_ directory: String, full: Bool, json asJSON: Bool) throws(LauncherError) -> [String] {
        let names: [String]
        do {
            // Hidden names are the agent's temporaries (.COMM-PID.tmp, a tree's directory being written).
            names = try FileSystem.directoryEntries(directory).filter { $0.hasSuffix(".stasis") && !$0.hasPrefix(".") }
        } catch {
            throw LauncherError(.usage, "cannot read directory \(directory): \(error)")
        }
        var rows: [(time: UInt64, line: String)] = []
        for name in names {
            let path = directory == "." ? name : directory + "/" + name
            if TreeDirectory.isDirectory(path) {
                rows.append(treeRow(name: name, path: path, full: full, json: asJSON))
                continue
            }
            var error: LauncherError?
            var header: ImageHeader?
            var chain: UInt32 = 1
            var pages: (raw: UInt64, stored: UInt64)? = nil
            do throws(LauncherError) {
                let image = full ? try VerifyCommand.verify(path, showProgress: false).0 : try FileImageSource(path: path).decode()
                header = image.header
                chain = image.parent?.chainLength ?? 1
                pages = (image.rawPageBytes, image.memoryAreas.reduce(0) { $0 + $1.fileBytes })
            } catch let failure {
                error = failure
                header = nil  // what a damaged image claims is not shown as if it were true
            }
            // The file's own size and time, whatever its contents: a damaged image is listed with them.
            let st = (try? fileStatus(path)) ?? stat()  // gone meanwhile: listed with size 0
            let fileSize = UInt64(st.st_size)
            let time = header?.timeNanoseconds ?? modificationTime(st)
            if asJSON {
                // A damaged image: program "", pid/sequence 0, the file's mtime and size, and "error".
                rows.append((time, "{\"image\": \"\(jsonEscape(path))\", \"program\": \"\(jsonEscape(header?.program ?? ""))\", "
                    + "\"pid\": \(header?.pid ?? 0), \"sequence\": \(header?.sequence ?? 0), \"time_ns\": \(time), "
                    + "\"size\": \(fileSize), \"chain_length\": \(chain), \"ok\": \(error == nil)"
                    + (pages.map { ", \"page_bytes\": \($0.raw), \"stored_page_bytes\": \($0.stored)" } ?? "")
                    + (error.map { ", \"error\": \"\(jsonEscape($0.message))\"" } ?? "") + "}"))
            } else if let header, error == nil {
                rows.append((time, "\(name)  \(header.program)  pid \(header.pid)  #\(header.sequence)  "
                    + "\(formatTime(Int64(time)))  \(fileSize) bytes  \(chain > 1 ? "incremental (\(chain) in chain)  " : "")"
                    + "\(pages.map { InspectCommand.compressionNote(raw: $0.raw, stored: $0.stored) } ?? "")ok"))
            } else {
                rows.append((time, damagedRow(name, error, time: time, size: fileSize)))
            }
        }
        return rows.sorted(by: { $0.time < $1.time }).map(\.line)
    }

    /// `NAME  CORRUPT  modified TIME  SIZE bytes  REASON`: INCOMPLETE instead of CORRUPT when the image may be
    /// fine but a parent it needs is missing or not the one named.
    static func damagedRow(_ name: String, _ error: LauncherError?, time: UInt64, size: UInt64) -> String {
        let label = error?.code == .incompleteChain ? "INCOMPLETE" : "CORRUPT"
        return "\(name)  \(label)  modified \(formatTime(Int64(time)))  \(size) bytes  " + (error?.message ?? "")
    }

    static func modificationTime(_ st: stat) -> UInt64 {
        UInt64(max(0, Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)))
    }

    /// A tree checkpoint's row: the manifest's root, the number of processes, the bytes of its files, and
    /// whether its members are the ones the manifest names and decode (--full: verify completely).
    static func treeRow(name: String, path: String, full: Bool, json asJSON: Bool) -> (time: UInt64, line: String) {
        var error: LauncherError?
        var manifest: TreeManifest?
        var chain: UInt32 = 1
        do throws(LauncherError) {
            if full {
                let verified = try VerifyCommand.verifyTree(path, showProgress: false, key: nil)
                manifest = verified.tree.manifest
                chain = verified.members.map { $0.image.parent?.chainLength ?? 1 }.max() ?? 1
            } else {
                let tree = try TreeDirectory(path: path)
                let members = try tree.decodeMembers()
                manifest = tree.manifest
                chain = members.map { $0.image.parent?.chainLength ?? 1 }.max() ?? 1
            }
        } catch let failure {
            error = failure
            manifest = nil  // a damaged tree's manifest is not shown as if it were true
        }
        let size = TreeDirectory.diskSize(of: path).bytes
        let st = (try? fileStatus(path)) ?? stat()  // gone meanwhile: listed with time 0
        let header = manifest?.header
        let time = header?.timeNanoseconds ?? modificationTime(st)
        let processes = manifest?.processes.count ?? 0
        if asJSON {
            return (time, "{\"image\": \"\(jsonEscape(path))\", \"program\": \"\(jsonEscape(header?.program ?? ""))\", "
                + "\"pid\": \(header?.pid ?? 0), \"sequence\": \(header?.sequence ?? 0), \"time_ns\": \(time), "
                + "\"size\": \(size), \"chain_length\": \(chain), \"processes\": \(processes), \"ok\": \(error == nil)"
                + (error.map { ", \"error\": \"\(jsonEscape($0.message))\"" } ?? "") + "}")
        }
        guard let header, error == nil else { return (time, damagedRow(name, error, time: time, size: size)) }
        return (time, "\(name)  \(header.program)  pid \(header.pid)  #\(header.sequence)  \(formatTime(Int64(time)))  "
            + "\(size) bytes  tree of \(InspectCommand.counted(processes, "process", "processes"))  "
            + "\(chain > 1 ? "incremental (\(chain) in chain)  " : "")ok")
    }
}
