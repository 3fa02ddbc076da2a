import Glibc
import StasisImage
import Testing

/// --compress: damaged and truncated compressed images.
extension CompressionTests {
    /// The byte in the middle of the stored bytes of the first compressed (not raw) block with at least
    /// 64 stored bytes, found by walking the records as IMAGE-FORMAT.md frames them (not with the
    /// decoder under test), and the offset of the PAGE_BLOCKS record that holds it.
    func compressedBlockByte(_ bytes: [UInt8]) throws -> (byte: Int, record: Int) {
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
        var offset = Int(try ImageHeader.decode(from: ByteArraySource(bytes)).recordsOffset)
        while offset + 32 <= bytes.count {
            let (kind, payloadBytes) = (u32(offset), Int(u32(offset + 4)))
            let (dataOffset, dataBytes) = (Int(u64(offset + 8)), Int(u64(offset + 16)))
            if kind == 0 { break }  // END
            if kind == 12 {  // PAGE_BLOCKS: first_page u64, block_count u32, reserved u32, then {pages, stored_bytes, crc, flags}
                var stored = dataOffset
                for i in 0..<Int(u32(offset + 32 + 8)) {
                    let entry = offset + 32 + 16 + 16 * i
                    let storedBytes = Int(u32(entry + 4))
                    if u32(entry + 12) & 1 == 0 && storedBytes >= 64 { return (stored + storedBytes / 2, offset) }
                    stored += storedBytes
                }
            }
            offset = dataBytes > 0 ? dataOffset + dataBytes : (offset + 32 + payloadBytes + 7) / 8 * 8
        }
        throw TestFailure("no compressed block in the image")
    }

    /// (5) One flipped byte inside a compressed block: `stasis verify`, an eager restart and a lazy one
    /// (whose pager finds it while paging in and stops the program) all exit 3 (bad image) with one
    /// line. A compressed image cut short is refused with one line too, by restart, verify and inspect.
    @Test(.timeLimit(.minutes(5))) func aDamagedOrTruncatedCompressedImageIsRefused() throws {
        let scratch = Scratch()
        defer { endProcesses(startedFrom: scratch.path) }  // a program a failed restart left behind
        let image = try compressedTextImage(scratch)
        let bytes = try readBytes(image)
        let (at, record) = try compressedBlockByte(bytes)
        var damaged = bytes
        damaged[at] ^= 0x10
        let path = scratch.file("damaged.stasis")
        try writeBytes(damaged, to: path)

        var (code, text) = try Stasis.run(["verify", path], in: scratch.path)
        #expect(code == 3 && text.contains("checksum"), "verify: \(text)")
        for mode in [["--eager"], []] {
            (code, text) = try Stasis.run(["restart"] + mode + [path], in: scratch.path)
            #expect(code == 3, "restart \(mode): exit \(code): \(text)")
            #expect(["checksum", "corrupt", "damaged"].contains { text.contains($0) }, "restart \(mode): \(text)")
            #expect(text.split(separator: "\n").count == 1, "restart \(mode): \(text)")
        }

        // cut at the PAGE_BLOCKS record, inside its blocks' data, and one byte short
        for length in [record, at, bytes.count - 1] {
            let cut = scratch.file("cut-\(length).stasis")
            try writeBytes(Array(bytes.prefix(length)), to: cut)
            (code, text) = try Stasis.run(["restart", "--eager", cut], in: scratch.path)
            #expect(code == 3 && text.contains("truncated") && text.split(separator: "\n").count == 1,
                    "restart of \(length) of \(bytes.count) bytes: exit \(code): \(text)")
            (code, text) = try Stasis.run(["verify", cut], in: scratch.path)
            #expect(code == 3 && text.contains("truncated"), "verify of \(length) bytes: exit \(code): \(text)")
            (code, text) = try Stasis.run(["inspect", cut], in: scratch.path)
            #expect(code != 0 && text.contains("truncated"), "inspect of \(length) bytes: exit \(code): \(text)")
        }
    }
}
