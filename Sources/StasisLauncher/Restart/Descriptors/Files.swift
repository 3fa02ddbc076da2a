import Glibc
import StasisImage
import StasisSystem

/// REGULAR, DEVICE and DIRECTORY: reopened by path; UNSUPPORTED: /dev/null in its place.
extension FileDescriptorPlan {
    /// Opens with the recorded access mode and status flags, at the recorded offset.
    mutating func reopen(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        let keepFlags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK | 0o40000 /* O_DIRECT */
            | 0o1000000 /* O_NOATIME */ | O_SYNC | O_DSYNC | 0o100000 /* O_LARGEFILE */ | O_DIRECTORY | 0o10000000 /* O_PATH */)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(record.path, keepFlags | (record.kind == .directory ? O_DIRECTORY : 0))
        } catch {
            throw LauncherError(.filesChanged, "fd \(record.fd): cannot reopen \(record.path): \(error)")
        }
        if record.kind != .device && record.offset > 0 {
            do {
                try fd.seek(to: record.offset)
            } catch {
                fd.closeAfterError()
                throw LauncherError(.filesChanged, "fd \(record.fd): cannot seek \(record.path) to \(record.offset): \(error)")
            }
        }
        return try keep(fd, record)
    }

    mutating func reopenUnsupported(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        printError("stasis: warning: fd \(record.fd) (\(record.path)) was not saved (--skip-unsupported); it is /dev/null now")
        return try keep(try reopenNull(record), record)
    }

    func reopenNull(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        do {
            return try FileDescriptor.open("/dev/null", O_RDWR)
        } catch {
            throw LauncherError(.failure, "fd \(record.fd): cannot open /dev/null: \(error)")
        }
    }
}
