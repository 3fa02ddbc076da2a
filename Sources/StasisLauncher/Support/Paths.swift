import Glibc
import CStasisABI
import StasisSystem

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
            let token = randomRequestToken()  // never a magic of the agent's own signals
            let dir = path(uid: uid, token: token)
            do {
                try FileSystem.makeDirectory(dir, mode: 0o700)
            } catch where error == .exists {
                continue
            } catch {
                throw LauncherError(.failure, "cannot create \(dir): \(error); check that /tmp is writable")
            }
            // Root checkpointing another user's process: the agent runs as that user.
            if getuid() == 0 && uid != 0 {
                do throws(Errno) {
                    try FileSystem.changeOwner(dir, to: uid)
                } catch {
                    try? FileSystem.removeDirectory(dir)  // best effort: the chown error is the one to report
                    throw LauncherError(.failure, "cannot give \(dir) to uid \(uid): \(error)")
                }
            }
            return ControlDirectory(path: dir, token: token)
        }
        throw LauncherError(.failure, "cannot create a private directory in /tmp; check that /tmp is writable")
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Removes the directory and everything either side may have left in it (ENOENT for what was
    /// never written is expected and dropped).
    func remove() {
        for name in [STASIS_REQUEST_FILE, STASIS_ACCEPTED_FILE, STASIS_RESULT_FILE] {
            try? FileSystem.removeFile(file(name))
            try? FileSystem.removeFile(file(name + ".tmp"))
        }
        try? FileSystem.removeDirectory(path)  // not empty only if a stranger wrote there: left for them to see
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
            do {
                try FileSystem.makeDirectory(prefix, mode: 0o700)
                // Best effort, as before: the agent reports a directory it cannot write to.
                if getuid() == 0 && owner != 0 { try? FileSystem.changeOwner(prefix, to: owner) }
            } catch where error == .exists {
                continue
            } catch {
                throw LauncherError(.usage, "cannot create image directory \(path): \(error); check the path and its permissions")
            }
        }
    }
    guard let resolved = absolutePath(path), let st = try? fileStatus(resolved), st.st_mode & S_IFMT == S_IFDIR else {
        throw LauncherError(.usage, "image directory \(path) is not a directory; name a directory")
    }
    return resolved
}

/// An absolute, symlink-resolved path; nil when it does not resolve (missing, no permission).
func absolutePath(_ path: String) -> String? {
    try? FileSystem.resolvedPath(path)
}
