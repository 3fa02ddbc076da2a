import Glibc

/// Path-level calls of the launcher, one typed wrapper each (SYS `FilePath` operations, trimmed).
public enum FileSystem {
    /// The corresponding C function is `mkdir(2)`.
    public static func makeDirectory(_ path: String, mode: mode_t) throws(Errno) {
        _ = try valueOrErrno { mkdir(path, mode) }
    }

    /// The corresponding C function is `rmdir(2)`.
    public static func removeDirectory(_ path: String) throws(Errno) {
        _ = try valueOrErrno { rmdir(path) }
    }

    /// The corresponding C function is `unlink(2)`.
    public static func removeFile(_ path: String) throws(Errno) {
        _ = try valueOrErrno { unlink(path) }
    }

    /// The corresponding C function is `rename(2)`.
    public static func rename(_ from: String, to: String) throws(Errno) {
        _ = try valueOrErrno { Glibc.rename(from, to) }
    }

    /// Sets the owner (uid only). The corresponding C function is `chown(2)`.
    public static func changeOwner(_ path: String, to uid: uid_t) throws(Errno) {
        _ = try valueOrErrno { chown(path, uid, gid_t(bitPattern: -1)) }
    }

    /// Whether the caller may access `path` in `mode` (R_OK, X_OK, F_OK...). The corresponding C
    /// function is `access(2)`; any error means no.
    public static func isAccessible(_ path: String, _ mode: CInt) -> Bool { access(path, mode) == 0 }

    /// The absolute, symlink-resolved path. The corresponding C function is `realpath(3)`.
    public static func resolvedPath(_ path: String) throws(Errno) -> String {
        guard let resolved = realpath(path, nil) else { throw Errno.current }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// A symbolic link's target. The corresponding C function is `readlink(2)`.
    public static func linkTarget(_ path: String) throws(Errno) -> String {
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = try valueOrErrno { buffer.withUnsafeMutableBytes { readlink(path, $0.baseAddress!, 4096) } }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// The names in a directory, without "." and "..". The corresponding C functions are
    /// `opendir(3)`, `readdir(3)` and `closedir(3)`.
    public static func directoryEntries(_ path: String) throws(Errno) -> [String] {
        guard let dir = opendir(path) else { throw Errno.current }
        defer { closedir(dir) }  // a read-only directory stream: nothing to lose at close
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
