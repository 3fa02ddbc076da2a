import Glibc
import StasisImage
import StasisSystem

/// PIPE and FIFO: one new pipe per old one, refilled with the bytes the program had not read.
extension FileDescriptorPlan {
    /// This record's end of the pipe, made (and refilled) the first time one of its ends is met: the
    /// read end for O_RDONLY records, else the write end.
    mutating func pipeEnd(_ record: FileDescriptorRecord, _ pipe: PipePayload) throws(LauncherError) -> FileDescriptor {
        let ends: (read: FileDescriptor, write: FileDescriptor)
        if let made = shared.pipes[pipe.inode] {
            ends = made
        } else {
            ends = try makePipe(record, pipe)
            shared.pipes[pipe.inode] = ends
        }
        let source = record.statusFlags & UInt32(O_ACCMODE) == UInt32(O_RDONLY) ? ends.read : ends.write
        try setStatusFlags(source, record)
        return source
    }

    /// A new pipe with the old one's capacity and buffered bytes. An end the image lacks is closed with
    /// the launcher: the program then sees end of file or EPIPE, as if the peer had gone.
    private mutating func makePipe(_ record: FileDescriptorRecord, _ pipe: PipePayload) throws(LauncherError)
        -> (read: FileDescriptor, write: FileDescriptor)
    {
        var ends: [Int32] = [0, 0]
        guard Glibc.pipe(&ends) == 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot create a pipe: \(Errno.current)") }
        let read = try keep(FileDescriptor(rawValue: ends[0]), record)
        let write = try keep(FileDescriptor(rawValue: ends[1]), record)
        if pipe.bufferSize > 0 { _ = fcntl(write.rawValue, 1031 /* F_SETPIPE_SZ */, Int32(bitPattern: pipe.bufferSize)) }
        let queued = shared.pipeBytes[pipe.inode] ?? pipe.queued
        if !queued.isEmpty {
            do {
                try write.writeAll(queued)
            } catch {
                throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill the pipe: \(error)")
            }
        }
        return (read, write)
    }

    /// A named FIFO: held open read-write by the launcher until the program has it (so that neither
    /// open blocks and the refill has a reader), refilled once, then opened with the recorded flags.
    mutating func reopenFIFO(_ record: FileDescriptorRecord, _ fifo: PipePayload) throws(LauncherError) -> FileDescriptor {
        let refill = shared.fifosRefilled.insert(fifo.inode).inserted
        let holder: FileDescriptor
        do {
            holder = try FileDescriptor.open(record.path, O_RDWR | O_NONBLOCK)
        } catch {
            throw LauncherError(.filesChanged, "fd \(record.fd): cannot reopen the FIFO \(record.path): \(error)")
        }
        hold(holder)
        // Bytes still in the FIFO (another process kept it open since) were never lost: not sent twice.
        var pending: Int32 = 0
        if refill && !fifo.queued.isEmpty && ioctl(holder.rawValue, UInt(FIONREAD), &pending) == 0 && pending == 0 {
            do {
                try holder.writeAll(fifo.queued)
            } catch {
                throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill the FIFO \(record.path): \(error)")
            }
        }
        let flags = Int32(bitPattern: record.statusFlags) & (O_ACCMODE | O_APPEND | O_NONBLOCK)
        let fd = open(record.path, flags | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw LauncherError(.filesChanged, "fd \(record.fd): cannot reopen the FIFO \(record.path): \(Errno.current)") }
        let file = FileDescriptor(rawValue: fd)
        try setStatusFlags(file, record)
        return try keep(file, record)
    }
}
