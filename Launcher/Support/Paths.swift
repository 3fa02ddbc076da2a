import Glibc
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

/// The per-user control directory shared with the agent: /tmp/stasis-UID (0700, owned by UID).
enum ControlDirectory {
    static func path(uid: uid_t) -> String { "/tmp/stasis-\(uid)" }

    static func prepare(uid: uid_t) throws(LauncherError) -> String {
        let dir = path(uid: uid)
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw LauncherError(.failure, "cannot create \(dir): \(Errno.current); check /tmp is writable")
        }
        var st = stat()
        // Root preparing another user's directory creates it as root first: that one (root's own, so
        // nobody else can have planted it) is then handed over below.
        let owner = lstat(dir, &st) == 0 ? st.st_uid : uid_t.max
        guard owner == uid || (getuid() == 0 && owner == 0), st.st_mode & S_IFMT == S_IFDIR, st.st_mode & 0o022 == 0 else {
            throw LauncherError(.failure, "\(dir) is not a private directory owned by uid \(uid); remove it and retry")
        }
        if getuid() == 0 && uid != 0 { _ = chown(dir, uid, gid_t(bitPattern: -1)) }
        return dir
    }
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
