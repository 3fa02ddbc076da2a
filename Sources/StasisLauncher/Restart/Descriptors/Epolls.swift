import CStasisSpawn
import StasisImage
import StasisSystem

/// EPOLL: a new instance here; its registrations are replayed by the child (stasis_spawn) once every
/// descriptor has its number.
extension FileDescriptorPlan {
    mutating func makeEpoll(_ record: FileDescriptorRecord, _ epoll: EpollPayload) throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_epoll()
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate an epoll instance: \(Errno(rawValue: -fd))") }
        let source = try keep(FileDescriptor(rawValue: fd), record)
        // Registrations of descriptors the image does not have were closed before the checkpoint.
        for entry in epoll.entries where present.contains(entry.fd) {
            epollAdds.append(stasis_epoll_add_t(epoll_fd: record.fd, fd: entry.fd, events: entry.events, reserved: 0, data: entry.data))
        }
        return source
    }
}
