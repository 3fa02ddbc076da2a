import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// INOTIFY: a new instance with every watch re-added.
extension FileDescriptorPlan {
    /// Each watch goes back on the same file (found by its handle) with the same watch descriptor. A
    /// watch whose file is gone, or that needs privileges to find (open_by_handle_at:
    /// CAP_DAC_READ_SEARCH), is skipped with a warning; queued events are lost.
    mutating func makeInotify(_ record: FileDescriptorRecord, _ inotify: InotifyPayload) throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_inotify(nonblocking(record))
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot create an inotify instance: \(Errno(rawValue: -fd))") }
        for watch in inotify.watches {
            var path = [CChar](repeating: 0, count: 4096)
            // An empty handle (the kernel could not encode one) finds nothing: ENOENT, as a file that is gone.
            let found: Int32 = watch.handle.isEmpty ? -ENOENT : watch.handle.withUnsafeBufferPointer { handle in
                stasis_path_of_handle(watch.device, watch.handleType, handle.baseAddress!, UInt32(handle.count), &path, 4096)
            }
            guard found == 0 else {
                printError("stasis: warning: fd \(record.fd): inotify watch \(watch.descriptor) not restored: its file cannot be found (\(Errno(rawValue: -found)))")
                continue
            }
            let wd = stasis_inotify_watch(fd, path, watch.mask, watch.descriptor)
            if wd != watch.descriptor {
                printError("stasis: warning: fd \(record.fd): inotify watch \(watch.descriptor) came back as \(wd)")
            }
        }
        return try keep(FileDescriptor(rawValue: fd), record)
    }
}
