// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// TERMINAL and PTY_MASTER: modes, window size and the bytes queued in a pair the program holds.
extension FileDescriptorDumper {
    /// PTY_MASTER: object_id = the pty number; the slave's modes (in extraBuffer: isTerminal), the
    /// window size after them, then the queues. Returns the extra bytes.
    @_noAllocation @_noLocks
    func capturePtyMaster(_ fd: Int32, into record: inout stasis_file_descriptor_record_t) -> Int {
        record.kind = UInt32(STASIS_FD_PTY_MASTER)
        var number: UInt32 = 0
        _ = withUnsafeMutablePointer(to: &number) { n in
            RawSyscall.call(STASIS_NR_ioctl, Int(fd), 0x8004_5430 /* TIOCGPTN */, Int(bitPattern: n))
        }
        record.object_id = UInt64(number)
        _ = RawSyscall.call(STASIS_NR_ioctl, Int(fd), 0x5413 /* TIOCGWINSZ */, Int(bitPattern: extraBuffer + 36))
        return 44 + captureTerminalQueues(master: fd, number: number)
    }

    /// The bytes queued in the pair whose master is `master` (its slave's modes are at extraBuffer): taken
    /// out and put back (stasis_pty.h), stored after the window size as u32 input bytes, u32 output bytes,
    /// the input (for the slave to read), the output (for the master to read). Returns the bytes added
    /// after the first 44, 0 when nothing is queued. Only for a pair whose slave the program holds too
    /// (the pair restart recreates): the slave is used through the program's own fd, since opening it
    /// afresh and closing it would hang the master up when nobody else has it open.
    @_noAllocation @_noLocks
    func captureTerminalQueues(master: Int32, number: UInt32) -> Int {
        var slave = -1
        for i in 0..<ptySlaveCount where ptySlaves[2 * i] == Int32(bitPattern: number) { slave = Int(ptySlaves[2 * i + 1]) }
        if slave < 0 { return 0 }
        let input = extraBuffer + 52
        let output = input + Int(STASIS_PTY_INPUT_MAX)
        var inputBytes: UInt32 = 0
        var outputBytes: UInt32 = 0
        let modes = UnsafePointer(extraBuffer.assumingMemoryBound(to: stasis_pty_modes_t.self))
        let scratch = infoBuffer.assumingMemoryBound(to: UInt8.self)
        _ = _unsafePerformance {
            stasis_pty_take_queues(master, Int32(slave), modes, input.assumingMemoryBound(to: UInt8.self), &inputBytes,
                                   output.assumingMemoryBound(to: UInt8.self), &outputBytes, scratch)
        }
        if inputBytes == 0 && outputBytes == 0 { return 0 }
        extraBuffer.storeBytes(of: inputBytes, toByteOffset: 44, as: UInt32.self)
        extraBuffer.storeBytes(of: outputBytes, toByteOffset: 48, as: UInt32.self)
        for i in 0..<Int(outputBytes) {  // the output right after the input
            (input + Int(inputBytes) + i).storeBytes(of: output.load(fromByteOffset: i, as: UInt8.self), as: UInt8.self)
        }
        return 8 + Int(inputBytes) + Int(outputBytes)
    }

    /// TCGETS succeeds only on a terminal; it leaves the modes in extraBuffer.
    @_noAllocation @_noLocks
    func isTerminal(_ fd: Int32) -> Bool {
        RawSyscall.call(STASIS_NR_ioctl, Int(fd), 0x5401 /* TCGETS */, Int(bitPattern: extraBuffer)) == 0
    }
}
