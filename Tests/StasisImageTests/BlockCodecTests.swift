import CStasisABI
import Testing

/// stasis_lz.h, the block codec of `--compress` (PAGE_BLOCKS, IMAGE-FORMAT.md 4.11 and 9): round trips over
/// the kinds of page data a heap holds, the "does not shrink" answer, the format as documented, and a
/// decoder that stays inside its buffers whatever it is given.
@Suite struct BlockCodecTests {
    /// splitmix64: the same bytes on every run.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    static func words(_ count: Int, _ make: (Int, inout Generator) -> UInt64) -> [UInt8] {
        var g = Generator(state: UInt64(count))
        var bytes = [UInt8]()
        bytes.reserveCapacity(count * 8)
        for i in 0..<count { withUnsafeBytes(of: make(i, &g).littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    static func textRecords(_ bytes: Int) -> [UInt8] {
        var g = Generator(state: 7)
        let names = ["alice", "bob", "carol", "dave", "erin"]
        var text = [UInt8]()
        var id = 100_000
        while text.count < bytes {
            let r = g.next()
            let record = "{\"id\":\(id),\"name\":\"\(names[Int(r % 5)])_\(r >> 40 % 1000)\",\"active\":\(r & 1 == 0),"
                + "\"score\":\((r >> 8) % 100).\((r >> 16) % 10)}\n"
            text.append(contentsOf: record.utf8)
            id += 1
        }
        return Array(text.prefix(bytes))
    }

    static func smallIntegers(_ bytes: Int) -> [UInt8] { words(bytes / 8) { _, g in g.next() % 300 } }
    static func smoothDoubles(_ bytes: Int) -> [UInt8] {
        words(bytes / 8) { i, _ in (Double(i / 16) * 0.25 + 1.0).bitPattern }   // a field of steps
    }
    static func pointerWords(_ bytes: Int) -> [UInt8] {
        words(bytes / 8) { _, g in
            let r = g.next()
            return r & 3 == 0 ? 0 : 0x0000_7f3c_2a00_0000 + (r >> 8) % 65536 * 16
        }
    }
    static func randomBytes(_ bytes: Int) -> [UInt8] { Array(words((bytes + 7) / 8) { _, g in g.next() }.prefix(bytes)) }

    /// The compressed block, or nil when the codec said "store it raw".
    static func compress(_ input: [UInt8], capacity: Int? = nil) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: capacity ?? input.count)
        var scratch = [UInt8](repeating: 0xee, count: Int(STASIS_LZ_SCRATCH_BYTES))
        let length = input.withUnsafeBytes { src in
            output.withUnsafeMutableBytes { dst in
                scratch.withUnsafeMutableBytes { s in
                    stasis_lz_compress(src.baseAddress!, src.count, dst.baseAddress!, dst.count, s.baseAddress!)
                }
            }
        }
        return length == 0 ? nil : Array(output.prefix(length))
    }

    /// Decompresses into `length` bytes placed between two guard zones; fails the test if a guard
    /// byte changed. Returns the output on success, nil on -1.
    static func decompress(_ block: [UInt8], length: Int) -> [UInt8]? {
        let guardBytes = 64
        var buffer = [UInt8](repeating: 0x5a, count: length + 2 * guardBytes)
        // A copy of exactly the block's bytes, so a read past it would be a read past an allocation.
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: max(block.count, 1), alignment: 1)
        defer { source.deallocate() }
        source.copyBytes(from: block)
        let result = buffer.withUnsafeMutableBytes { dst in
            stasis_lz_decompress(source.baseAddress!, block.count, dst.baseAddress! + guardBytes, length)
        }
        #expect(buffer.prefix(guardBytes).allSatisfy { $0 == 0x5a } && buffer.suffix(guardBytes).allSatisfy { $0 == 0x5a })
        #expect(result == 0 || result == -1)
        return result == 0 ? Array(buffer[guardBytes..<(guardBytes + length)]) : nil
    }

    static func roundTrip(_ input: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Int? {
        guard let block = compress(input) else { return nil }
        #expect(block.count < input.count, sourceLocation: sourceLocation)
        #expect(decompress(block, length: input.count) == input, sourceLocation: sourceLocation)
        // Exactly that length and no other.
        #expect(decompress(block, length: input.count + 1) == nil, sourceLocation: sourceLocation)
        if input.count > 0 { #expect(decompress(block, length: input.count - 1) == nil, sourceLocation: sourceLocation) }
        return block.count
    }

    @Test func roundTripsPageData() throws {
        let size = 256 << 10
        let zero = try #require(Self.roundTrip([UInt8](repeating: 0, count: size)))
        #expect(zero < 1200)                                       // a run of 256 KiB: ~1 KiB of 255s
        let text = try #require(Self.roundTrip(Self.textRecords(size)))
        #expect(text < size / 2)
        let ints = try #require(Self.roundTrip(Self.smallIntegers(size)))
        #expect(ints < size * 3 / 4)
        let doubles = try #require(Self.roundTrip(Self.smoothDoubles(size)))
        #expect(doubles < size / 4)
        let pointers = try #require(Self.roundTrip(Self.pointerWords(size)))
        #expect(pointers < size * 3 / 4)
    }

    @Test func oneMebibyteBlocks() throws {
        let mixed = Self.textRecords(256 << 10) + Self.smallIntegers(256 << 10) + Self.pointerWords(256 << 10)
            + [UInt8](repeating: 0, count: 256 << 10)
        #expect(mixed.count == 1 << 20)
        let n = try #require(Self.roundTrip(mixed))
        #expect(n < mixed.count / 2)
        #expect(Self.roundTrip([UInt8](repeating: 0xff, count: 1 << 20)) != nil)
    }

    @Test func incompressibleDataIsStoredRaw() {
        #expect(Self.compress(Self.randomBytes(1 << 20)) == nil)
        #expect(Self.compress(Self.randomBytes(64 << 10)) == nil)
        #expect(Self.compress(Self.randomBytes(100)) == nil)
        #expect(Self.compress([]) == nil)
        #expect(Self.compress([42]) == nil)
        // Compressible, but not into the room given.
        #expect(Self.compress(Self.textRecords(4096), capacity: 64) == nil)
        // Mostly random with a compressible tail: still round-trips when it shrinks.
        _ = Self.roundTrip(Self.randomBytes(60_000) + [UInt8](repeating: 7, count: 5536))
    }

    @Test func tinyAndOddSizes() throws {
        for size in Array(0...80) + [127, 255, 256, 257, 4095, 4097, 65535, 65536, 65537, 100_003] {
            for input in [[UInt8](repeating: 0, count: size), Array(Self.textRecords(size)),
                          Array(Self.smallIntegers(size + 8).prefix(size)), Self.randomBytes(size)] {
                _ = Self.roundTrip(input)
            }
        }
        // Periods 1...9 (the decoder's short-offset path) and matches ending on the last byte.
        for period in 1...9 {
            let pattern = (0..<period).map { UInt8(truncatingIfNeeded: $0 * 37 + 1) }
            for size in [4, 8, 15, 16, 17, 19, 20, 31, 33, 1000] {
                let input = (0..<size + period).map { pattern[$0 % period] }
                _ = Self.roundTrip(Array(input.prefix(size + period)))
            }
        }
        // Far matches: the same 64 KiB - 16 bytes apart, and just past the offset limit.
        for gap in [65_000, 65_535 - 64, 65_536, 70_000] {
            let head = Self.randomBytes(64)
            let far = try #require(Self.roundTrip(head + [UInt8](repeating: 0, count: gap - 64) + head))
            #expect(gap <= 65_535 ? far < 400 : far > 64)
        }
    }

    /// The format as Docs/IMAGE-FORMAT.md writes it, byte for byte.
    @Test func documentedFormat() {
        // One sequence of literals only: token 0x30, "abc".
        #expect(Self.decompress([0x30, 0x61, 0x62, 0x63], length: 3) == Array("abc".utf8))
        // "a", then a match at offset 1 of length 7 (M = 3), then the final empty sequence.
        #expect(Self.decompress([0x13, 0x61, 0x01, 0x00, 0x00], length: 8) == Array("aaaaaaaa".utf8))
        // 15 + 2 literal bytes (extension byte 2).
        let seventeen = (0..<17).map { UInt8($0) }
        #expect(Self.decompress([0xf0, 0x02] + seventeen, length: 17) == seventeen)
        // A match of 4 + 15 + 255 + 1 = 275 bytes of zeros: extension bytes 255, 1.
        #expect(Self.decompress([0x1f, 0x00, 0x01, 0x00, 0xff, 0x01, 0x00], length: 276) == [UInt8](repeating: 0, count: 276))
        // The encoder writes exactly these for the same inputs.
        #expect(Self.compress(Array("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8)) == [0x1f, 0x61, 0x01, 0x00, 0x0c, 0x00])
    }

    @Test func malformedBlocksAreRefused() {
        let cases: [[UInt8]] = [
            [],                                  // no token
            [0x30, 0x61, 0x62],                  // literals run past the input
            [0x10, 0x61, 0x00, 0x00, 0x00],      // offset 0
            [0x10, 0x61, 0x02, 0x00, 0x00],      // offset before the output's start
            [0x10, 0x61, 0x01],                  // input ends inside the offset
            [0x13, 0x61, 0x01, 0x00],            // input ends where the next token should be
            [0x14, 0x61],                        // the last sequence has M != 0
            [0xf0],                              // input ends inside a literal extension
            [0xf0] + [UInt8](repeating: 0xff, count: 300), // an extension past the output's length
            [0x1f, 0x61, 0x01, 0x00] + [UInt8](repeating: 0xff, count: 40) + [0x00, 0x00], // a match past it
            [0x13, 0x61, 0x01, 0x00, 0x00, 0x00], // bytes after the final sequence
        ]
        for block in cases { #expect(Self.decompress(block, length: 8) == nil, "\(block.prefix(8))") }
        #expect(Self.decompress([0x00], length: 0) == [])    // the empty block is one token
        #expect(Self.decompress([0x00], length: 1) == nil)
    }

    /// Damaged blocks (the image may be damaged or hostile): every truncation and thousands of
    /// single-byte changes give -1 or exactly the length asked for, never a write outside it.
    @Test func truncatedAndCorruptedBlocksStayInBounds() throws {
        let input = Self.textRecords(3000) + Self.smallIntegers(2000) + [UInt8](repeating: 0, count: 1000)
            + Self.pointerWords(2000)
        let block = try #require(Self.compress(input))
        for cut in 0..<block.count { #expect(Self.decompress(Array(block.prefix(cut)), length: input.count) == nil) }
        var g = Generator(state: 99)
        var survived = 0
        for position in 0..<block.count {
            for _ in 0..<4 {
                var damaged = block
                damaged[position] ^= UInt8(truncatingIfNeeded: g.next() | 1)
                if let out = Self.decompress(damaged, length: input.count) {
                    #expect(out.count == input.count)
                    survived += 1
                }
            }
        }
        // Literal bytes decode to other bytes of the right length (the image's CRC catches those).
        #expect(survived > 0)
        // Random bytes as a block, at many output lengths.
        for n in 0..<2000 {
            let garbage = Self.randomBytes(1 + n % 97).map { $0 ^ UInt8(n & 0xff) }
            _ = Self.decompress(garbage, length: n % 300)
        }
    }

    /// The numeric filter (IMAGE-FORMAT.md 9.1): undone exactly whatever the words; smooth numbers that
    /// the codec cannot shrink shrink after it; random words are not taken for numbers.
    @Test func numericFilter() {
        let count = 32768  // one 256 KiB block
        var x = 1.0
        let doubles = Self.words(count) { _, g in
            x += Double(g.next() % 1000) * 1e-9
            return x.bitPattern
        }
        let random = Self.words(count) { _, g in g.next() }
        var scratch = [UInt8](repeating: 0, count: Int(STASIS_LZ_SCRATCH_BYTES))
        func compressed(_ bytes: [UInt8]) -> Int {
            var out = [UInt8](repeating: 0, count: bytes.count)
            return bytes.withUnsafeBytes { input in
                out.withUnsafeMutableBytes { output in
                    scratch.withUnsafeMutableBytes { hash in
                        stasis_lz_compress(input.baseAddress!, input.count, output.baseAddress!, output.count, hash.baseAddress!)
                    }
                }
            }
        }
        func filtered(_ bytes: [UInt8]) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: bytes.count)
            bytes.withUnsafeBytes { input in out.withUnsafeMutableBytes { stasis_lz_shuffle(input.baseAddress!, $0.baseAddress!, $0.count) } }
            return out
        }
        func unfiltered(_ bytes: [UInt8]) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: bytes.count)
            bytes.withUnsafeBytes { input in out.withUnsafeMutableBytes { stasis_lz_unshuffle(input.baseAddress!, $0.baseAddress!, $0.count) } }
            return out
        }
        for data in [doubles, random, Self.textRecords(count * 8)] { #expect(unfiltered(filtered(data)) == data) }
        #expect(doubles.withUnsafeBytes { stasis_lz_looks_numeric($0.baseAddress!, $0.count) } == 1)
        #expect(random.withUnsafeBytes { stasis_lz_looks_numeric($0.baseAddress!, $0.count) } == 0)
        #expect(compressed(doubles) == 0, "the codec alone cannot shrink a smooth double field")
        let after = compressed(filtered(doubles))
        #expect(after > 0 && after < doubles.count * 3 / 4, "filtered: \(after) of \(doubles.count) bytes")
        #expect(compressed(filtered(random)) == 0)
    }
}
