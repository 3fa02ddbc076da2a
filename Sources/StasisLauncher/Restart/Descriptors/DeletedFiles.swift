import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// DELETED and MEMFD: files nobody can open by name, made again from the contents in the image.
extension FileDescriptorPlan {
    /// A deleted file comes back unlinked (O_TMPFILE in its old directory, else /tmp), a memfd as a
    /// memfd with its seals; contents from the image, then the recorded access mode and offset. One file
    /// per (device, inode): every descriptor of it (in a tree, of every process) opens that one again.
    mutating func recreateContents(_ record: FileDescriptorRecord, _ contents: FileContentsPayload, from image: ImageSource)
        throws(LauncherError) -> FileDescriptor
    {
        let key = FileObjectKey(device: record.device, inode: record.inode)
        let object: FileDescriptor
        if record.inode != 0, let made = shared.fileObjects[key] {
            object = made
        } else {
            object = try Self.makeFileObject(record, contents, from: image)
            hold(object)
            if record.inode != 0 { shared.fileObjects[key] = object }
        }
        // The recorded access mode and status flags: a new open of the same inode.
        let flags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK)
        let reopened = open("/proc/self/fd/\(object.rawValue)", flags | O_CLOEXEC)
        guard reopened >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot reopen \(record.originalPath): \(Errno.current)") }
        let result = FileDescriptor(rawValue: reopened)
        if record.offset > 0 { _ = lseek(reopened, off_t(record.offset), SEEK_SET) }
        return try keep(result, record)
    }

    /// The file itself, read-write, filled from the record's contents (size and seals as recorded).
    static func makeFileObject(_ record: FileDescriptorRecord, _ contents: FileContentsPayload, from image: ImageSource)
        throws(LauncherError) -> FileDescriptor
    {
        let original = record.originalPath
        var fd: Int32
        if record.kind == .memfd {
            let name = original.hasPrefix("/memfd:") ? String(original.dropFirst(7)) : "stasis"
            fd = stasis_make_memfd(name)
        } else {
            let directory = String(original[..<(original.lastIndex(of: "/") ?? original.startIndex)])
            let mode = mode_t(record.mode & 0o7777)
            fd = open(directory.isEmpty ? "/" : directory, 0o20200000 /* O_TMPFILE */ | O_RDWR | O_CLOEXEC, mode)
            if fd < 0 { fd = open("/tmp", 0o20200000 /* O_TMPFILE */ | O_RDWR | O_CLOEXEC, mode) }
        }
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate \(original): \(Errno.current)") }
        let file = FileDescriptor(rawValue: fd)
        do {
            var offset: UInt64 = 0
            while offset < record.dataBytes {
                let count = Int(min(UInt64(4 << 20), record.dataBytes - offset))
                let bytes = try image.bytes(at: record.dataOffset + offset, count: count)
                try file.writeAll(bytes)
                offset += UInt64(count)
            }
        } catch {
            file.closeAfterError()
            throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill \(original): \(error)")
        }
        _ = ftruncate(fd, off_t(contents.size))
        if record.kind == .memfd && contents.seals != 0 { _ = fcntl(fd, 1033 /* F_ADD_SEALS */, Int32(bitPattern: contents.seals)) }
        return file
    }
}

extension FileDescriptorRecord {
    /// A DELETED or MEMFD record's path without the " (deleted)" the kernel adds.
    var originalPath: String {
        path.hasSuffix(" (deleted)") ? String(path.dropLast(10)) : path
    }
}
