// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// EPOLL: the registrations, from fdinfo.
extension FileDescriptorDumper {
    /// /proc/self/fdinfo/N of an epoll instance: one "tfd: FD events: HEX data: HEX ..." line per registration.
    @_noAllocation @_noLocks
    func captureEpollEntries(_ fd: Int32) throws(FreezeFailure) -> Int {
        let info = try readInfo(fd)
        let entries = extraBuffer.assumingMemoryBound(to: stasis_epoll_entry_t.self)
        let capacity = Self.extraCapacity / MemoryLayout<stasis_epoll_entry_t>.stride
        var count = 0
        var cursor = ByteCursor(info.text, count: info.count)
        while !cursor.atEnd {
            let lineStart = cursor.index
            cursor.skipPast(UInt8(ascii: "\n"))
            var line = ByteCursor(info.text + lineStart, count: cursor.index - lineStart)
            guard line.skipWord("tfd:") else { continue }
            line.skip(UInt8(ascii: " "))
            guard let target = line.decimal() else { continue }
            line.skip(UInt8(ascii: " "))
            guard line.skipWord("events:") else { continue }
            line.skip(UInt8(ascii: " "))
            guard let events = line.hex() else { continue }
            line.skip(UInt8(ascii: " "))
            guard line.skipWord("data:") else { continue }
            line.skip(UInt8(ascii: " "))
            guard let data = line.hex(), count < capacity else { continue }
            entries[count] = stasis_epoll_entry_t(fd: Int32(truncatingIfNeeded: target),
                                                  events: UInt32(truncatingIfNeeded: events), data: data)
            count += 1
        }
        return count * MemoryLayout<stasis_epoll_entry_t>.stride
    }
}
