import Glibc
import StasisProc
import Testing

/// The agent's own /proc/self/maps parser (StasisProc.MapsLine, used in the freeze window).
@Suite struct ProcMapsParserTests {
    func parse(_ line: String) -> (MapsLine, String)? {
        var bytes = Array(line.utf8)
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { buffer in
            guard let entry = MapsLine(parsing: buffer.baseAddress!, count: buffer.count - 1) else { return nil }
            let path = String(decoding: buffer[entry.pathStart..<entry.pathStart + entry.pathCount], as: UTF8.self)
            return (entry, path)
        }
    }

    @Test func parsesAnonymousFileAndNamedLines() throws {
        let (heap, heapPath) = try #require(parse("55c11ab85000-55c11aba6000 rw-p 00000000 00:00 0                          [heap]"))
        #expect(heap.start == 0x55c1_1ab8_5000 && heap.end == 0x55c1_1aba_6000)
        #expect(heap.isReadable && heap.isWritable && !heap.isExecutable && !heap.isShared)
        #expect(heapPath == "[heap]" && heap.inode == 0)
        let (lib, libPath) = try #require(parse("7ff4cb699000-7ff4cb79a000 r-xp 00099000 fe:01 1312 /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30"))
        #expect(lib.offset == 0x99000 && lib.deviceMajor == 0xfe && lib.deviceMinor == 1 && lib.inode == 1312)
        #expect(lib.isExecutable && libPath == "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30")
        let (_, anonPath) = try #require(parse("7ff4bb4ff000-7ff4bb600000 rw-p 00000000 00:00 0"))
        #expect(anonPath == "")
        let (shared, sharedPath) = try #require(parse("7f0000000000-7f0000001000 rw-s 00000000 00:01 5 /dev/zero (deleted)"))
        #expect(shared.isShared && sharedPath == "/dev/zero (deleted)")
    }

    @Test(arguments: ["", "zz-10 rw-p 0 00:00 0", "2000-1000 rw-p 0 00:00 0", "1000-2000 rwzp 0 00:00 0", "1000-2000",
                      "1000-2000 rw-p 0 00:00 -5", "1000-2000 rw-p 0 0000 0"])
    func rejectsMalformedLines(line: String) {
        #expect(parse(line) == nil)
    }

    @Test func parsesEveryLineOfThisProcessesMaps() throws {
        guard let f = fopen("/proc/self/maps", "r") else { throw TestFailure("cannot open /proc/self/maps") }
        defer { fclose(f) }
        var lines = 0
        var line = [CChar](repeating: 0, count: 8192)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(cString: line).trimmingCharacters(in: "\n")
            #expect(parse(text) != nil, "unparsed: \(text)")
            lines += 1
        }
        #expect(lines > 5)
    }
}

struct TestFailure: Error { var message: String; init(_ m: String) { message = m } }

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }

    @Test func splitsTextIntoLinesAndFindsSmapsFlags() {
        let smaps = "7f00-7f10 rw-p 00000000 00:00 0 \nRss:  4 kB\nVmFlags: rd wr mr mw me dc ac sd \n"
            + "7f10-7f20 rw-p 00000000 00:00 0\nVmFlags: rd wr mr mw me ac sd dcx\nVmFlags: rd dc"
        var bytes = Array(smaps.utf8)
        var found: [(UInt64, Bool)] = []
        bytes.withUnsafeMutableBufferPointer { buffer in
            var lines = ByteCursor(UnsafePointer(buffer.baseAddress!), count: buffer.count)
            var start: UInt64 = 0
            while let line = lines.nextLine() {
                if let area = MapsLine(parsing: line.bytes, count: line.count) {
                    start = area.start
                } else if line.count > 0 && line.bytes[0] == UInt8(ascii: "V") {
                    found.append((start, SmapsLine.vmFlags(line, contain: "dc")))
                }
            }
        }
        #expect(found.map(\.0) == [0x7f00, 0x7f10, 0x7f10])
        #expect(found.map(\.1) == [true, false, true])  // "dcx" is not "dc"; the last line has no newline
    }
}
