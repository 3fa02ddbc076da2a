import Glibc
import CStasisABI
import StasisSystem

/// Where the launcher's companions live: next to its own executable (/proc/self/exe).
enum Installation {
    static var directory: String {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buffer, 4096)
        guard n > 0 else { return "." }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
    }
    static var agentLibrary: String { directory + "/libStasisAgent.so" }
    static var restorer: String { directory + "/stasis-restorer" }
}

/// The private directory one `stasis checkpoint` request shares with the agent:
/// /tmp/stasis-UID-TOKEN (0700, owned by the target's uid), TOKEN being the request's sigqueue value in
/// hex (64 random bits). A name nobody can guess cannot be taken first by another user, and each
/// request has its own, so concurrent requests never share a file; it is removed when the request ends.
struct ControlDirectory {
    let path: String
    let token: UInt64

    static func path(uid: uid_t, token: UInt64) -> String { STASIS_CONTROL_PREFIX + "\(uid)-\(String(token, radix: 16))" }

    /// Creates a fresh one (never reuses an existing name) for a process of `uid`.
    static func create(uid: uid_t) throws(LauncherError) -> ControlDirectory {
        for _ in 0..<16 {
            // The high half is never 0, so no token equals STASIS_FREEZE_MAGIC (the agent's own freeze).
            let token = UInt64.random(in: (1 << 32)...UInt64.max)
            let dir = path(uid: uid, token: token)
            if mkdir(dir, 0o700) != 0 {
                if errno == EEXIST { continue }
                throw LauncherError(.failure, "cannot create \(dir): \(Errno.current); check that /tmp is writable")
            }
            // Root checkpointing another user's process: the agent runs as that user.
            if getuid() == 0 && uid != 0 && chown(dir, uid, gid_t(bitPattern: -1)) != 0 {
                let error = Errno.current
                rmdir(dir)
                throw LauncherError(.failure, "cannot give \(dir) to uid \(uid): \(error)")
            }
            return ControlDirectory(path: dir, token: token)
        }
        throw LauncherError(.failure, "cannot create a private directory in /tmp; check that /tmp is writable")
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Removes the directory and everything either side may have left in it.
    func remove() {
        for name in [STASIS_REQUEST_FILE, STASIS_ACCEPTED_FILE, STASIS_RESULT_FILE] {
            unlink(file(name))
            unlink(file(name + ".tmp"))
        }
        rmdir(path)
    }
}

/// An image directory (`--dir`) as an absolute, symlink-resolved path; created (mode 0700, with its
/// missing parents, as DMTCP's `--ckptdir` is) when it does not exist. Created directories go to
/// `owner` when root creates them for another user's process (its agent writes the images).
func makeImageDirectory(_ path: String, owner: uid_t = getuid()) throws(LauncherError) -> String {
    if absolutePath(path) == nil {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) == 0 {
                if getuid() == 0 && owner != 0 { _ = chown(prefix, owner, gid_t(bitPattern: -1)) }
            } else if errno != EEXIST {
                throw LauncherError(.usage, "cannot create image directory \(path): \(Errno.current); check the path and its permissions")
            }
        }
    }
    var st = stat()
    guard let resolved = absolutePath(path), stat(resolved, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
        throw LauncherError(.usage, "image directory \(path) is not a directory; name a directory")
    }
    return resolved
}

/// An absolute, symlink-resolved path.
func absolutePath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// Signal numbers from names: "USR2", "SIGUSR2" or "12".
func parseSignal(_ text: String) -> Int32? {
    if let n = Int32(text), (1...64).contains(n) { return n }
    let name = text.uppercased().hasPrefix("SIG") ? String(text.uppercased().dropFirst(3)) : text.uppercased()
    let table: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "USR1": SIGUSR1, "USR2": SIGUSR2, "TERM": SIGTERM,
        "ALRM": SIGALRM, "WINCH": SIGWINCH, "URG": SIGURG, "PWR": SIGPWR, "XCPU": SIGXCPU, "VTALRM": SIGVTALRM,
        "PROF": SIGPROF, "CONT": SIGCONT, "TSTP": SIGTSTP,
    ]
    if let n = table[name] { return n }
    if name.hasPrefix("RTMIN+"), let k = Int32(name.dropFirst(6)), 34 + k <= 64 { return 34 + k }  // glibc SIGRTMIN is 34
    return nil
}

/// A CLOCK_REALTIME time in nanoseconds as UTC, ISO 8601: "2026-12-06T10:15:04Z"; with `fraction`,
/// nanoseconds too ("2026-12-06T10:15:04.123456789Z"), for times that may differ within a second.
func formatTime(_ nanoseconds: Int64, fraction: Bool = false) -> String {
    var seconds = time_t(nanoseconds / 1_000_000_000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
    let nanos = String((nanoseconds % 1_000_000_000 + 1_000_000_000) % 1_000_000_000)
    return String(cString: buffer) + (fraction ? "." + String(repeating: "0", count: 9 - nanos.count) + nanos : "") + "Z"
}
