import Glibc
import StasisSystem

/// posix_spawn of this executable (`stasis ARGUMENTS`) with stdin/stdout on /dev/null, default
/// signals and no LD_PRELOAD: the --interval watcher and restart's periodic checkpoints.
func spawnSelf(_ arguments: [String], newSession: Bool) throws(LauncherError) -> pid_t {
    let path = Installation.executable
    let environment = ProcessControl.environment.filter { !$0.hasPrefix("LD_PRELOAD=") }
    do {
        return try spawnWithDefaultSignals(path, arguments: arguments, environment: environment, newSession: newSession) { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
    } catch {
        throw LauncherError(.failure, "cannot start \(path): \(error)")
    }
}
