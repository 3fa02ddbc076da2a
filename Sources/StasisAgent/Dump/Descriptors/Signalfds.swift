// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// SIGNALFD: the signal mask, from fdinfo.
extension FileDescriptorDumper {
    @_noAllocation @_noLocks
    func captureSignalfd(_ fd: Int32, into record: inout stasis_file_descriptor_record_t) throws(FreezeFailure) {
        record.kind = UInt32(STASIS_FD_SIGNALFD)
        record.object_id = try readInfo(fd).hexField("sigmask:") ?? 0
    }
}
