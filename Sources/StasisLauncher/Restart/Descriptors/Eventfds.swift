import CStasisSpawn
import StasisImage
import StasisSystem

/// EVENTFD: a new eventfd with the saved counter.
extension FileDescriptorPlan {
    mutating func makeEventfd(_ record: FileDescriptorRecord, _ eventfd: EventfdPayload) throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_eventfd(eventfd.counter, eventfd.isSemaphore ? 1 : 0, nonblocking(record))
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate an eventfd: \(Errno(rawValue: -fd))") }
        return try keep(FileDescriptor(rawValue: fd), record)
    }
}
