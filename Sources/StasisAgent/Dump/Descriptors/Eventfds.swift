// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// EVENTFD: the counter and EFD_SEMAPHORE, from fdinfo.
extension FileDescriptorDumper {
    @_noAllocation @_noLocks
    func captureEventfd(_ fd: Int32, into record: inout stasis_file_descriptor_record_t) throws(FreezeFailure) {
        record.kind = UInt32(STASIS_FD_EVENTFD)
        let info = try readInfo(fd)
        record.object_id = info.hexField("eventfd-count:") ?? 0
        record.object_flags = info.hexField("eventfd-semaphore:") == 1 ? STASIS_EVENTFD_SEMAPHORE : 0
    }
}
