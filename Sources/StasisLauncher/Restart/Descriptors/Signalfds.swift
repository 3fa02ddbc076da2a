import CStasisSpawn
import StasisImage
import StasisSystem

/// SIGNALFD: a new signalfd with the saved mask.
extension FileDescriptorPlan {
    mutating func makeSignalfd(_ record: FileDescriptorRecord, _ signalfd: SignalfdPayload) throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_signalfd(signalfd.mask, nonblocking(record))
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate a signalfd: \(Errno(rawValue: -fd))") }
        return try keep(FileDescriptor(rawValue: fd), record)
    }
}
