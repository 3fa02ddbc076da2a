import Glibc
import StasisSystem

/// Where the launcher's companions (`libStasisAgent.so`, `stasis-restorer`) are, found from the
/// launcher's own path (/proc/self/exe, symlinks resolved), so that a build directory, an install
/// and an unpacked tarball all work wherever they are:
///
///     .build/debug/stasis               build directory: the companions beside the executable
///     .build/debug/libStasisAgent.so
///     .build/debug/stasis-restorer
///
///     PREFIX/bin/stasis                 Scripts/install.sh and Scripts/package.sh
///     PREFIX/lib/stasis/libStasisAgent.so
///     PREFIX/lib/stasis/stasis-restorer
///
/// The first layout whose agent is there wins; with neither, the paths name the build layout (and
/// `run` and `restart` report the missing file). Nothing is ever looked up in $PATH or by the loader.
enum Installation {
    static let agentName = "libStasisAgent.so"
    static let restorerName = "stasis-restorer"
    /// Below the executable's directory's parent: PREFIX/bin/stasis → PREFIX/lib/stasis.
    static let installedCompanions = "lib/stasis"

    /// The launcher's own executable, symlinks resolved ("./stasis" without /proc).
    static let executable: String = {
        guard let path = try? FileSystem.linkTarget("/proc/self/exe") else { return "./stasis" }  // no /proc: beside cwd
        return path
    }()

    /// The directory holding the executable.
    static var directory: String { parent(of: executable) }

    /// The directory holding the agent and the restorer (see the layouts above).
    static let companionDirectory: String = companionDirectory(
        executableDirectory: directory, exists: { FileSystem.isAccessible($0, F_OK) })

    static var agentLibrary: String { companionDirectory + "/" + agentName }
    static var restorer: String { companionDirectory + "/" + restorerName }

    /// The build layout when `executableDirectory` holds the agent, else the installed layout when
    /// PARENT/lib/stasis holds it, else the build layout.
    static func companionDirectory(executableDirectory: String, exists: (String) -> Bool) -> String {
        if exists(executableDirectory + "/" + agentName) { return executableDirectory }
        let installed = parent(of: executableDirectory) + "/" + installedCompanions
        if exists(installed + "/" + agentName) { return installed }
        return executableDirectory
    }

    /// `path` without its last component ("/usr/local/bin" → "/usr/local", "/bin" → "", "stasis" → ".").
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}
