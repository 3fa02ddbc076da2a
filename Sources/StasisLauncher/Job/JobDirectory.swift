import Glibc
import StasisSystem

/// A job's checkpoint directory (`stasis job --dir DIR`). A job is its program, as an absolute path, and
/// its arguments: DIR/stasis-job records them when the job first starts, and a later `stasis job` with
/// another program or other arguments is refused there (one directory, one job). The job's images are
/// every `COMM-PID-SEQ.stasis` in DIR (a file, or a tree checkpoint's directory), newest first by
/// modification time; temporary names (a leading dot) are never candidates.
struct JobDirectory {
    static let identityName = "stasis-job"

    let path: String

    var identityPath: String { path + "/" + Self.identityName }

    /// The identity file's bytes: a version line, then the program and each argument, each ended by NUL
    /// (arguments may hold newlines).
    static func identity(program: String, arguments: [String]) -> [UInt8] {
        var bytes = Array("stasis job 1\n".utf8)
        for part in [program] + arguments { bytes += Array(part.utf8) + [0] }
        return bytes
    }

    /// The identity's program and arguments, for a message; nil when the bytes are not an identity.
    static func describe(_ bytes: [UInt8]) -> String? {
        let header = Array("stasis job 1\n".utf8)
        guard bytes.count > header.count, Array(bytes.prefix(header.count)) == header, bytes.last == 0 else { return nil }
        let parts = bytes.dropFirst(header.count).dropLast().split(separator: 0, omittingEmptySubsequences: false)
        return parts.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
    }

    /// Makes DIR this job's: records the identity when DIR has none (and no image either), refuses a
    /// directory of another job, or with images no `stasis job` made.
    func claim(_ identity: [UInt8]) throws(LauncherError) {
        if let recorded = try? readFile(identityPath) {
            guard recorded == identity else {
                let other = Self.describe(recorded).map { "of another job (\($0))" } ?? "whose \(Self.identityName) file is not one"
                throw LauncherError(.usage, "\(path) holds checkpoints \(other); give this job its own --dir")
            }
            return
        }
        if let stray = images().first {
            throw LauncherError(.usage, "\(path) holds images no `stasis job` made (\(stray)); give this job an empty --dir")
        }
        try writeAtomically(identityPath, identity, owner: getuid())
    }

    /// Every image entry, newest first.
    func images() -> [String] {
        let names = ((try? FileSystem.directoryEntries(path)) ?? []).filter { $0.hasSuffix(".stasis") && !$0.hasPrefix(".") }
        let dated: [(String, Int64)] = names.map { name in
            let status = try? fileStatus(path + "/" + name)
            let time = status.map { Int64($0.st_mtim.tv_sec) * 1_000_000_000 + Int64($0.st_mtim.tv_nsec) } ?? 0
            return (path + "/" + name, time)
        }
        return dated.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 > $1.0 }.map(\.0)
    }

    /// The newest image that verifies (every checksum, its chain, its signature with `key`), and why each
    /// newer one did not.
    func newestVerified(key: [UInt8]?) -> (image: String?, rejected: [(image: String, why: String)]) {
        var rejected: [(image: String, why: String)] = []
        for image in images() {
            do {
                _ = try VerifyCommand.report(image, key: key, json: false, showProgress: false)
                return (image, rejected)
            } catch {
                rejected.append((image, error.message))
            }
        }
        return (nil, rejected)
    }
}
