// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// INOTIFY: one stasis_inotify_watch_t per watch, parsed from the fdinfo lines
///     inotify wd:2 ino:13 sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:1300000000000000
/// (every number in hex, as fs/notify/fdinfo.c prints them).
extension FileDescriptorDumper {
    @_noAllocation @_noLocks
    func captureInotify(_ fd: Int32, into record: inout stasis_file_descriptor_record_t) throws(FreezeFailure) -> Int {
        record.kind = UInt32(STASIS_FD_INOTIFY)
        let info = try readInfo(fd)
        let watches = extraBuffer.assumingMemoryBound(to: stasis_inotify_watch_t.self)
        let capacity = Self.extraCapacity / MemoryLayout<stasis_inotify_watch_t>.stride
        var count = 0
        var text = ByteCursor(info.text, count: info.count)
        while var line = text.nextLine() {
            guard line.skipWord("inotify "), count < capacity else { continue }
            if parseWatch(&line, into: &watches[count]) { count += 1 }
        }
        return count * MemoryLayout<stasis_inotify_watch_t>.stride
    }

    /// One watch line after "inotify "; false when it has no watch descriptor.
    @_noAllocation @_noLocks
    private func parseWatch(_ line: inout ByteCursor, into watch: inout stasis_inotify_watch_t) -> Bool {
        watch = stasis_inotify_watch_t()
        while !line.atEnd {
            if line.skipWord("wd:") {
                watch.wd = Int32(truncatingIfNeeded: line.hex() ?? 0)
            } else if line.skipWord("ino:") {
                watch.inode = line.hex() ?? 0
            } else if line.skipWord("sdev:") {
                watch.device = line.hex() ?? 0
            } else if line.skipWord("mask:") {
                watch.mask = UInt32(truncatingIfNeeded: line.hex() ?? 0)
            } else if line.skipWord("fhandle-type:") {
                watch.handle_type = Int32(truncatingIfNeeded: line.hex() ?? 0)
            } else if line.skipWord("f_handle:") {
                watch.handle_bytes = withUnsafeMutableBytes(of: &watch.handle) { handle in
                    var used = 0
                    while used < handle.count, let high = nibble(line.current) {
                        line.index += 1
                        guard let low = nibble(line.current) else { break }
                        line.index += 1
                        handle[used] = high << 4 | low
                        used += 1
                    }
                    return UInt32(used)
                }
            }
            line.skipPast(UInt8(ascii: " "))
        }
        return watch.wd > 0
    }

    @_noAllocation @_noLocks
    private func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
