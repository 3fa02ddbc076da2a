import Glibc
import StasisImage
import Testing

/// `stasis restart` in the background and the program it restored, by its PID on the host (--pid-file).
/// In a PID namespace the program is not restart's child but the grandchild, under the namespace's init:
/// killing restart ends neither. So this remembers the program and restart's children (the init) with
/// their start times and SIGKILLs whichever is still the same process at deinit, whatever failed (the
/// namespace ends with its init), then restart itself.
final class RestoredProgram {
    let launcher: ChildProcess
    let log: String
    let pidFile: String
    /// The program's PID on the host: what --pid-file names, what signals and `stasis checkpoint` take
    /// (-1 until `waitForProgram`).
    private(set) var pid: pid_t = -1
    private var members: [(pid: pid_t, start: UInt64)] = []

    /// Starts `command` (`… stasis restart --pid-file PIDFILE … IMAGE`, stdout and stderr to `log`).
    init(_ command: [String], pidFile: String, log: String) throws {
        self.log = log
        self.pidFile = pidFile
        launcher = try ChildProcess(command[0], Array(command.dropFirst()), outputPath: log)
    }

    /// Waits for the PID file; fails, with the log, when restart ends without writing it.
    func waitForProgram() throws {
        let restored = try waitForPIDFile(pidFile, of: launcher, log: log, "restart")
        guard let restored else {
            let end = try? launcher.wait(seconds: 5)  // a zombie already: nil only if waitpid failed
            throw TestFailure("restart ended (\(end.map { "\($0)" } ?? "?")) without restoring: \((try? String(contentsOfFile: log)) ?? "")")
        }
        pid = restored
        for member in [restored] + children(of: launcher.pid) {
            if let start = startTime(member) { members.append((member, start)) }
        }
    }

    deinit {
        for (pid, start) in members where startTime(pid) == start { kill(pid, SIGKILL) }
        launcher.killAndReap()
    }

    /// restart's stdout and stderr.
    var logText: String { (try? String(contentsOfFile: log)) ?? "" }

    /// The lines of the log that contain `text`.
    func logLines(containing text: String) -> [Substring] {
        logText.split(separator: "\n").filter { $0.contains(text) }
    }

    /// The program's PID and thread ids as it sees them (the innermost NSpid of each /proc/PID/task/TID),
    /// and how many PID namespaces deep it is (1: the host's).
    func idsInside() -> (pid: pid_t?, tids: Set<pid_t>, levels: Int) {
        let own = namespacePIDs("/proc/\(pid)/status")
        let tids = opendirNames("/proc/\(pid)/task").filter { $0.first?.isNumber == true }.compactMap {
            namespacePIDs("/proc/\(pid)/task/\($0)/status").last
        }
        return (own.last, Set(tids), own.count)
    }

    /// Whether the program is in another user namespace than this test.
    var hasOwnUserNamespace: Bool {
        let theirs = readLink("/proc/\(pid)/ns/user")
        return !theirs.isEmpty && theirs != readLink("/proc/self/ns/user")
    }
}

/// The fixture pid-identity's "READY pid P tids T0 T1 T2 T3" (or PASS …) line: its PID and its threads' ids.
struct ProcessIdentity: CustomStringConvertible {
    var pid: pid_t
    var tids: [pid_t]

    init(pid: pid_t, tids: [pid_t]) {
        self.pid = pid
        self.tids = tids
    }

    /// The first line of `text` starting with `prefix` ("READY", "PASS pid-identity").
    init?(_ text: String, line prefix: String) {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        let words = line.split(separator: " ")
        guard let at = words.firstIndex(of: "pid"), at + 1 < words.count, let pid = pid_t(words[at + 1]),
              let tidsAt = words.firstIndex(of: "tids")
        else { return nil }
        self.pid = pid
        tids = words[(tidsAt + 1)...].compactMap { pid_t($0) }
    }

    /// What an image says: the header's PID and each thread record's TID (in the image's order).
    init(image path: String) throws {
        let image = try Image.decode(from: ByteArraySource(try readBytes(path)))
        pid = image.header.pid
        tids = image.threads.map(\.tid)
    }

    var description: String { "pid \(pid) tids \(tids)" }
}

/// The NSpid line of a /proc status file: a PID in each namespace, outermost first; empty when gone.
func namespacePIDs(_ statusPath: String) -> [pid_t] {
    guard let text = try? String(contentsOfFile: statusPath),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") })
    else { return [] }
    return line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { pid_t($0) }
}

/// readlink(2) as a string; "" when it fails.
func readLink(_ path: String) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    let n = readlink(path, &buffer, buffer.count - 1)
    return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
}

/// SIGKILLs every process whose command line starts with `directory`/: the copies of a fixture compiled
/// there (mkdtemp makes it unique to one test), original or restored, also one orphaned when a restart
/// died before it wrote its PID file (nothing else would find it: its parent is gone).
func endProcesses(startedFrom directory: String) {
    let prefix = directory + "/"
    var buffer = [UInt8](repeating: 0, count: 4096)
    for name in opendirNames("/proc") {
        guard let pid = pid_t(name), pid != getpid() else { continue }
        let fd = open("/proc/\(pid)/cmdline", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { continue }  // gone meanwhile
        let n = read(fd, &buffer, buffer.count)
        close(fd)
        guard n > 0 else { continue }  // a zombie's is empty
        let argv0 = String(decoding: buffer[0..<n].prefix { $0 != 0 }, as: UTF8.self)
        if argv0.hasPrefix(prefix) { kill(pid, SIGKILL) }
    }
}
