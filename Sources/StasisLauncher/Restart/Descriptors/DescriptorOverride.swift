import Glibc
import StasisImage
import StasisSystem

/// `stasis restart --fd N=PATH` / `--fd N=inherit`: what the program's fd N becomes instead of what the
/// image says (a log file that was moved or rotated, a descriptor the caller provides), like CRIU's
/// --inherit-fd.
enum DescriptorOverride: Equatable {
    case path(String)  // opened with the program's access mode and flags (append stays append), created if missing
    case inherit       // restart's own fd N

    /// Parses the --fd values; usage errors for bad syntax, a repeated N, or `inherit` of an fd restart
    /// does not have (checked before restart opens anything of its own).
    static func parse(_ values: [String]) throws(LauncherError) -> [Int32: DescriptorOverride] {
        var result: [Int32: DescriptorOverride] = [:]
        for value in values {
            guard let eq = value.firstIndex(of: "="), let fd = Int32(value[..<eq]), fd >= 0, fd < 1 << 20,
                !value[value.index(after: eq)...].isEmpty
            else { throw LauncherError(.usage, "--fd needs N=PATH or N=inherit, not \"\(value)\"; see `stasis restart --help`") }
            guard result[fd] == nil else { throw LauncherError(.usage, "--fd \(fd) is given twice") }
            let target = String(value[value.index(after: eq)...])
            if target == "inherit" {
                guard fcntl(fd, F_GETFD) >= 0 else {
                    throw LauncherError(.usage, "--fd \(fd)=inherit: stasis restart has no fd \(fd) to pass on")
                }
                result[fd] = .inherit
            } else {
                result[fd] = .path(target)
            }
        }
        return result
    }

    /// The image's fds that the overrides replace: the named ones and every fd that shared an open file
    /// description with one of them (2>&1: `--fd 1=PATH` moves both). Usage error for an fd the
    /// program did not have.
    static func replaced(_ overrides: [Int32: DescriptorOverride], in image: Image) throws(LauncherError) -> Set<Int32> {
        let present = Set(image.fileDescriptors.map(\.fd))
        for fd in overrides.keys.sorted() where !present.contains(fd) {
            throw LauncherError(.usage, "--fd \(fd): the program had no fd \(fd) open at the checkpoint")
        }
        var result = Set(overrides.keys)
        for record in image.fileDescriptors where record.sharesWith >= 0 && result.contains(record.sharesWith) {
            result.insert(record.fd)
        }
        return result
    }
}

extension FileDescriptorPlan {
    /// --fd N=PATH: PATH opened with the program's access mode and status flags (append stays append),
    /// created (0666 less the umask) when it is missing and the program wrote to fd N, never truncated;
    /// positioned at the saved offset when PATH is at least that long, else at its end.
    mutating func openReplacement(_ path: String, for record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        let flags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC
            | 0o100000 /* O_LARGEFILE */)
        let writes = flags & O_ACCMODE != O_RDONLY
        let fd = open(path, flags | O_NOCTTY | O_CLOEXEC | (writes ? O_CREAT : 0), 0o666)
        guard fd >= 0 else { throw LauncherError(.filesChanged, "--fd \(record.fd)=\(path): cannot open: \(Errno.current)") }
        let end = lseek(fd, 0, SEEK_END)
        if record.offset >= 0 && end >= 0 && Int64(end) >= record.offset && flags & O_APPEND == 0 {
            _ = lseek(fd, off_t(record.offset), SEEK_SET)
        }
        return try keep(FileDescriptor(rawValue: fd), record)
    }
}
