import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// Reopens the image's descriptors in the launcher, at high numbers, for the child to move into place.
struct FileDescriptorPlan {
    var moves: [stasis_fd_move_t] = []
    var keepStdio: Int32 = 0
    /// Numbers the restorer gets for the image and the status pipe (free in the program's table).
    var imageTarget: Int32 = 0
    var statusTarget: Int32 = 0
    private var opened: [FileDescriptor] = []

    init(image: Image, imageFD: FileDescriptor, statusFD: FileDescriptor) throws(LauncherError) {
        let highest = image.fileDescriptors.map(\.fd).max() ?? 2
        imageTarget = max(highest, 2) + 1
        statusTarget = imageTarget + 1
        let base = statusTarget + 16
        for record in image.fileDescriptors {
            switch record.kind {
            case .inherit:
                if record.fd <= 2 { keepStdio |= 1 << record.fd }
            case .regular, .device:
                let fd = try reopen(record)
                let moved: FileDescriptor
                do {
                    moved = try fd.duplicate(atLeast: base)
                } catch {
                    fd.closeAfterError()
                    throw LauncherError(.failure, "cannot duplicate fd for \(record.path): \(error)")
                }
                fd.closeAfterError()
                opened.append(moved)
                moves.append(stasis_fd_move_t(source: moved.rawValue, target: record.fd,
                                              close_on_exec: record.isCloseOnExec ? 1 : 0, reserved: 0))
            }
        }
        let image = try duplicate(imageFD, base)
        let status = try duplicate(statusFD, base)
        moves.append(stasis_fd_move_t(source: image.rawValue, target: imageTarget, close_on_exec: 0, reserved: 0))
        moves.append(stasis_fd_move_t(source: status.rawValue, target: statusTarget, close_on_exec: 0, reserved: 0))
    }

    private mutating func duplicate(_ fd: FileDescriptor, _ base: Int32) throws(LauncherError) -> FileDescriptor {
        do {
            let copy = try fd.duplicate(atLeast: base)
            opened.append(copy)
            return copy
        } catch {
            throw LauncherError(.failure, "cannot duplicate a descriptor: \(error)")
        }
    }

    /// Opens with the recorded access mode and status flags, at the recorded offset.
    private func reopen(_ record: FileDescriptorRecord) throws(LauncherError) -> FileDescriptor {
        let keep = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK | 0o40000 /* O_DIRECT */ | 0o1000000 /* O_NOATIME */ | O_SYNC | O_DSYNC | 0o100000 /* O_LARGEFILE */)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(record.path, keep)
        } catch {
            throw LauncherError(.filesChanged, "fd \(record.fd): cannot reopen \(record.path): \(error)")
        }
        if record.kind == .regular && record.offset > 0 {
            do {
                try fd.seek(to: record.offset)
            } catch {
                fd.closeAfterError()
                throw LauncherError(.filesChanged, "fd \(record.fd): cannot seek \(record.path) to \(record.offset): \(error)")
            }
        }
        return fd
    }

    func closeAll() {
        for fd in opened { fd.closeAfterError() }
    }
}
