import Glibc
import StasisSystem

/// Writes "PID\n" atomically (temp + rename), for `--pid-file` of run and restart.
func writePIDFile(_ path: String, _ pid: pid_t) throws(LauncherError) {
    let temp = path + ".tmp"
    do {
        let fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        try fd.writeAllAndClose(Array("\(pid)\n".utf8))
        try FileSystem.rename(temp, to: path)
    } catch {
        throw LauncherError(.failure, "cannot write pid file \(path): \(error)")
    }
}
