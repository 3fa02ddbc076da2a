import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// TERMINAL and PTY_MASTER: restart's own terminal takes a terminal's place, with the program's modes;
/// a pseudo-terminal pair the program made is made again, and its slave takes the place of the
/// TERMINAL records of /dev/pts/<old number>.
extension FileDescriptorPlan {
    mutating func terminal(_ record: FileDescriptorRecord, _ terminal: TerminalPayload) throws(LauncherError) -> FileDescriptor? {
        // The slave of a pair whose master the program holds: the new pair's slave.
        if let number = record.ptySlaveNumber, let master = shared.ptyMasters[number] {
            guard let slave = try ptyPair(master.record, master.master, openSlave: true).slave else { return nil }  // opened: held
            applyModes(terminal.modes, to: slave.rawValue)
            return slave
        }
        return try ownTerminal(record, terminal)
    }

    /// The terminal `stasis restart` runs on takes the old one's place, with the program's modes; nil when
    /// that is one of the launcher's own fds 0-2, kept as they are.
    private mutating func ownTerminal(_ record: FileDescriptorRecord, _ terminal: TerminalPayload) throws(LauncherError) -> FileDescriptor? {
        if record.fd <= 2 && isatty(record.fd) != 0 {
            keepStdio |= 1 << record.fd
            applyModes(terminal.modes, to: record.fd)
            return nil
        }
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open("/dev/tty", O_RDWR | O_NOCTTY | (Int32(bitPattern: record.statusFlags) & O_NONBLOCK))
        } catch {
            if record.fd <= 2 {
                keepStdio |= 1 << record.fd  // no terminal here: whatever restart's fd is (a file, a pipe)
                return nil
            }
            fd = try reopenNull(record)
            printError("stasis: fd \(record.fd) was a terminal and `stasis restart` has none; it is /dev/null now")
        }
        applyModes(terminal.modes, to: fd.rawValue)
        return try keep(fd, record)
    }

    /// A new pseudo-terminal pair for a master record (once per old number), with its modes and size.
    /// The slave is opened only with `openSlave` (the program holds it); the modes are set through the
    /// master either way.
    mutating func ptyPair(_ record: FileDescriptorRecord, _ master: PtyMasterPayload, openSlave: Bool) throws(LauncherError)
        -> (master: FileDescriptor, slave: FileDescriptor?)
    {
        if let pair = shared.ptys[master.number] { return pair }
        let fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard fd >= 0, ioctl(fd, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0, ioctl(fd, 0x8004_5430 /* TIOCGPTN */, &number) == 0
        else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot open a pseudo-terminal: \(Errno.current)") }
        let slaveFD = openSlave ? open("/dev/pts/\(number)", O_RDWR | O_NOCTTY | O_CLOEXEC) : -1
        guard slaveFD >= 0 || !openSlave else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot open /dev/pts/\(number): \(Errno.current)") }
        var modes = master.modes
        var size = master.windowSize
        _ = modes.withUnsafeMutableBytes { ioctl(fd, 0x5402 /* TCSETS: on the master, sets the slave's */, $0.baseAddress!) }
        _ = size.withUnsafeMutableBytes { ioctl(fd, 0x5414 /* TIOCSWINSZ */, $0.baseAddress!) }
        // What each side had still to read: back in the same queues (stasis_pty.h).
        if slaveFD >= 0, !master.input.isEmpty || !master.output.isEmpty {
            var scratch = [UInt8](repeating: 0, count: Int(STASIS_PTY_INPUT_MAX))
            let result = modes.withUnsafeBytes { m in
                master.input.withUnsafeBufferPointer { i in
                    master.output.withUnsafeBufferPointer { o in
                        stasis_pty_requeue(fd, slaveFD, m.baseAddress!.assumingMemoryBound(to: stasis_pty_modes_t.self),
                                           i.baseAddress, UInt32(i.count), o.baseAddress, UInt32(o.count), &scratch)
                    }
                }
            }
            if result != 0 {
                printError("stasis: warning: fd \(record.fd): the bytes queued in the pseudo-terminal may not all be back")
            }
        }
        let pair = (master: try keep(FileDescriptor(rawValue: fd), record),
                    slave: slaveFD >= 0 ? try keep(FileDescriptor(rawValue: slaveFD), record) : nil)
        shared.ptys[master.number] = pair
        return pair
    }

    /// TCSETS with the saved struct termios (raw mode, echo...).
    private func applyModes(_ modes: [UInt8], to fd: Int32) {
        var modes = modes
        _ = modes.withUnsafeMutableBytes { ioctl(fd, 0x5402 /* TCSETS */, $0.baseAddress!) }
    }
}

extension FileDescriptorRecord {
    /// A TERMINAL record's pty number when it is a pseudo-terminal slave (/dev/pts/N).
    var ptySlaveNumber: UInt64? {
        guard kind == .terminal, path.hasPrefix("/dev/pts/") else { return nil }
        return UInt64(path.dropFirst(9))
    }
}
