import Glibc
import StasisSystem
import Testing
@testable import StasisLauncher

/// The StasisSystem calls the launcher added, on descriptors this process owns (no child processes).
struct SystemWrapperTests {
    @Test func pipesAreCloseOnExecAndReadToTheEnd() throws {
        let (read, write) = try FileDescriptor.pipe()
        #expect(fcntl(read.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(write.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        try write.writeAllAndClose(Array("ok\n".utf8))
        #expect(try read.readByte() == UInt8(ascii: "o"))
        #expect(Restorer.readStatus(read) == Array("k\n".utf8))  // to end of file: no whole "ok" line left
        #expect(try read.readByte() == nil)
        try read.close()
    }

    @Test func restorerStatusStopsAtOk() throws {
        let (read, write) = try FileDescriptor.pipe()
        try write.writeAll(Array("warning w\nok\nlater\n".utf8))  // the pager may keep writing afterwards
        #expect(Restorer.readStatus(read) == Array("warning w\nok\n".utf8))
        try write.close()
        try read.setNonBlocking()
        #expect(read.readAvailable() == Array("later\n".utf8))
        try read.close()
    }

    @Test func writesAtAnOffsetWithoutMovingThePosition() throws {
        var template = Array("/tmp/stasis-launcher-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        try #require(fd >= 0)
        unlink(String(cString: template))
        let file = FileDescriptor(rawValue: fd)
        try file.writeAll([1, 2, 3, 4, 5, 6, 7, 8])
        try file.writeAll([9, 9], at: 2)
        #expect(lseek(fd, 0, SEEK_CUR) == 8)
        var bytes = [UInt8](repeating: 0, count: 8)
        _ = try bytes.withUnsafeMutableBytes { (raw) throws(Errno) in try file.read(at: 0, into: raw) }
        #expect(bytes == [1, 2, 9, 9, 5, 6, 7, 8])
        try file.close()
    }

    @Test func typedErrorsNameWhatHappened() {
        #expect(throws: Errno.noEntry) { try FileSystem.removeFile("/nonexistent/stasis-test") }
        #expect(throws: Errno(rawValue: ECHILD)) { _ = try ProcessControl.wait(getpid()) }
        #expect(throws: Errno.noSuchProcess) { try ProcessControl.send(0, to: 999_999_999) }
        #expect(throws: Errno.noEntry) { _ = try FileSystem.directoryEntries("/nonexistent/stasis-test") }
    }

    @Test func aSignalWaitWithATimeoutEndsWithNothing() throws {
        #expect(try SignalSet([SIGPWR]).wait(timeout: 0) == nil)
    }

    @Test func listsADirectoryWithoutDotEntries() throws {
        let names = try FileSystem.directoryEntries("/proc/self/fd")
        #expect(!names.contains(".") && !names.contains(".."))
        #expect(names.contains("0") || names.contains("1") || names.contains("2"))
    }
}
