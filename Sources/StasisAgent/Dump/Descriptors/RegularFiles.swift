// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// REGULAR, DEVICE and DIRECTORY: reopened by path at restart; only which devices qualify is decided here.
extension FileDescriptorDumper {
    @_noAllocation @_noLocks
    func isStatelessDevice(_ link: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        linkEquals(link, count, "/dev/null") || linkEquals(link, count, "/dev/zero")
            || linkEquals(link, count, "/dev/full") || linkEquals(link, count, "/dev/random")
            || linkEquals(link, count, "/dev/urandom")
    }
}
