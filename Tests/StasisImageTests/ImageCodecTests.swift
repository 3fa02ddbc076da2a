import CStasisABI
import StasisImage
import StasisImageSamples
import Testing

@Suite struct ImageCodecTests {
    @Test func roundTripsEveryRecord() throws {
        let (bytes, area) = sampleImage()
        let image = try Image.decode(from: ByteArraySource(bytes))
        #expect(image.header.pid == 4242)
        #expect(image.header.program == "/usr/bin/sample")
        #expect(image.header.kernelRelease == "6.18.0")
        #expect(image.process.cwd == "/tmp")
        #expect(image.process.auxv == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(image.threads.count == 1 && image.threads[0].xsave.count == 2432)
        #expect(image.memoryAreas.count == 2)
        #expect(image.memoryAreas[1].runs == area.runs)
        #expect(image.memoryAreas[1].dataOffset % 4096 == 0)
        #expect(image.storedBytes == 8192)
        // The page data is where the record says.
        let data = Int(image.memoryAreas[1].dataOffset)
        #expect(bytes[data] == 0xab && bytes[data + 8191] == 0xab)
    }

    /// The sizes are MemoryLayout of the C structs; what must agree with them is what the Swift
    /// encoders write (empty variable parts).
    @Test func swiftEncodersWriteTheCStructs() {
        func size(_ encode: (inout ByteWriter) -> Void) -> Int {
            var w = ByteWriter()
            encode(&w)
            return w.bytes.count
        }
        var header = ImageHeader()
        header.program = ""
        #expect(size { header.encode(into: &$0) } == MemoryLayout<stasis_image_header_t>.size)
        #expect(size { RecordHeader(kind: 0, payloadBytes: 0).encode(into: &$0) } == MemoryLayout<stasis_record_header_t>.size)
        #expect(size { ProcessRecord().encode(into: &$0) } == MemoryLayout<stasis_process_record_t>.size)
        #expect(size { MemoryAreaRecord().encode(into: &$0) } == MemoryLayout<stasis_memory_area_record_t>.size)
        #expect(size { ThreadRecord().encode(into: &$0) } == MemoryLayout<stasis_thread_record_t>.size)
        #expect(size { SignalActionsRecord().encode(into: &$0) } == MemoryLayout<stasis_signal_actions_record_t>.size)
        #expect(size { AgentRecord().encode(into: &$0) } == MemoryLayout<stasis_agent_record_t>.size)
        #expect(size { EndRecord(recordCount: 0, endOffset: 0).encode(into: &$0) } == MemoryLayout<stasis_end_record_t>.size)
        #expect(MemoryLayout<stasis_file_descriptor_record_t>.size == FileDescriptorRecord.fixedSize)
        #expect(MemoryLayout<stasis_memory_area_record_t>.offset(of: \.prot) == 24)
        #expect(MemoryLayout<stasis_thread_record_t>.offset(of: \.gregs) == 8)
        #expect(MemoryLayout<stasis_image_header_t>.offset(of: \.program_bytes) == 136)
    }

    @Test func rejectsAFileThatIsNotAnImage() {
        let bytes = Array("#!/bin/sh\necho hello, this is not an image at all, but it is long enough\n".utf8)
            + [UInt8](repeating: 0x20, count: 200)
        #expect(throws: ImageError.notAnImage) { try Image.decode(from: ByteArraySource(bytes)) }
    }

    @Test func callsAnEmptyFileEmptyNotTruncated() {
        #expect(throws: ImageError.empty) { try Image.decode(from: ByteArraySource([])) }
        #expect(!ImageError.empty.description.contains("byte 0"))
    }

    @Test func rejectsAnotherFormatVersion() {
        var (bytes, _) = sampleImage()
        bytes[8] = 99
        #expect(throws: ImageError.unsupportedVersion(99)) { try Image.decode(from: ByteArraySource(bytes)) }
    }

    /// Version 2 changed INOTIFY's payload (binary watches): a version 1 image gets one clear line.
    @Test func refusesAVersion1ImageWithOneLine() {
        #expect(ImageHeader.currentVersion == 4 && ImageHeader.currentVersion == UInt32(STASIS_IMAGE_VERSION))
        var (bytes, _) = sampleImage()
        bytes[8] = 1
        #expect(throws: ImageError.unsupportedVersion(1)) { try Image.decode(from: ByteArraySource(bytes)) }
        #expect(ImageError.unsupportedVersion(1).description
            == "image format version 1 is not supported by this stasis (it reads versions 2-4)")
    }

    /// Version 2 images (single processes, before trees) still read.
    @Test func readsAVersion2Image() throws {
        var (bytes, _) = sampleImage()
        bytes[8] = 2
        ImageHeader.reseal(&bytes)
        #expect(try Image.decode(from: ByteArraySource(bytes)).header.version == 2)
    }

    @Test func rejectsAnotherArchitecture() {
        var (bytes, _) = sampleImage()
        bytes[16] = 183  // EM_AARCH64
        #expect(throws: ImageError.foreignArchitecture(183)) { try Image.decode(from: ByteArraySource(bytes)) }
    }

    @Test(arguments: [0, 7, 8, 100, 143, 144, 200, 400, 1000, 4096, 4100, 8192, 12000])
    func rejectsTruncatedImages(length: Int) {
        let (bytes, _) = sampleImage()
        let cut = Array(bytes.prefix(min(length, bytes.count - 1)))
        #expect(throws: ImageError.self) { try Image.decode(from: ByteArraySource(cut)) }
    }

    @Test func rejectsEveryTruncationWithoutTrapping() {
        let (bytes, _) = sampleImage()
        for length in stride(from: 0, to: bytes.count, by: 13) {
            #expect(throws: ImageError.self) { try Image.decode(from: ByteArraySource(Array(bytes.prefix(length)))) }
        }
    }

    @Test func corruptBytesNeverTrap() {
        let (bytes, _) = sampleImage()
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var copy = bytes
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let i = Int.random(in: 0..<min(copy.count, 5000), using: &generator)
                copy[i] = UInt8.random(in: 0...255, using: &generator)
            }
            _ = try? Image.decode(from: ByteArraySource(copy))  // any ImageError is fine; a trap fails the run
        }
    }

    @Test func rejectsOverlappingAreas() {
        var header = ImageHeader()
        header.xcr0 = 3
        header.xsaveSize = 512
        header.pid = 1
        var encoder = ImageEncoder(header: header)
        for start: UInt64 in [0x400000, 0x400000] {
            var area = MemoryAreaRecord()
            area.start = start
            area.end = start + 0x2000
            area.protection = 5
            encoder.append(area, pageData: [])
        }
        #expect(throws: ImageError.self) { try Image.decode(from: ByteArraySource(encoder.finish())) }
    }

    /// STASIS_AREA_FILE_OBJECT (a memfd or deleted file mapped MAP_SHARED) round-trips with its device and
    /// inode, and only on a shared anonymous-style area.
    @Test func fileObjectAreasRoundTripAndNeedSharedAnonymous() throws {
        for (flags, valid) in [(MemoryAreaRecord.Flags([.shared, .anonymous, .fileObject]), true),
                               ([.anonymous, .fileObject], false), ([.shared, .fileObject], false)] {
            var area = MemoryAreaRecord()
            area.start = 0x7000_0000
            area.end = 0x7000_1000
            area.protection = 3
            area.flags = flags
            area.device = 1
            area.inode = 4242
            area.path = "/memfd:shared (deleted)"
            var writer = ByteWriter()
            area.encode(into: &writer)
            var reader = ByteReader(writer.bytes)
            let header = RecordHeader(kind: UInt32(STASIS_RECORD_MEMORY_AREA), payloadBytes: UInt32(writer.bytes.count))
            if valid {
                let decoded = try MemoryAreaRecord(decoding: &reader, header: header)
                #expect(decoded.flags == flags && decoded.inode == 4242 && decoded.device == 1)
            } else {
                #expect(throws: ImageError.self) { try MemoryAreaRecord(decoding: &reader, header: header) }
            }
        }
    }
}

/// A pseudo-terminal master's queued bytes (after termios and window size): u32 input, u32 output, the bytes.
@Suite struct TerminalQueueCodecTests {
    func decode(_ extra: [UInt8]) throws -> FileDescriptorRecord {
        try DescriptorCodec.decode(kind: .ptyMaster, path: "/dev/ptmx", extra: extra)
    }

    func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    @Test func queuesRoundTripAndBadLengthsAreRejected() throws {
        let modes = [UInt8](repeating: 1, count: 44)
        guard case .ptyMaster(let empty) = try decode(modes).payload else { Issue.record("not a pty master"); return }
        #expect(empty.input == [] && empty.output == [] && empty.modes.count == 36 && empty.windowSize.count == 8)
        guard case .ptyMaster(let queued) = try decode(modes + le(3) + le(2) + Array("abcde".utf8)).payload else {
            Issue.record("not a pty master"); return
        }
        #expect(queued.input == Array("abc".utf8) && queued.output == Array("de".utf8))
        for bad in [modes + le(3) + le(2) + Array("abcd".utf8), modes + le(5000) + le(0) + [UInt8](repeating: 0, count: 5000),
                    modes + [1, 2, 3], modes + le(0) + le(0) + [9]] {
            #expect(throws: ImageError.self) { try decode(bad) }
        }
    }
}

/// Builds FILE_DESCRIPTOR records from raw on-disk fields, as a damaged or hand-made image has them.
enum DescriptorCodec {
    static func bytes(kind: FileDescriptorRecord.Kind, path: String = "", objectID: UInt64 = 0, objectFlags: UInt32 = 0,
                      extra: [UInt8] = []) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(Int32(5)); writer.write(kind.rawValue); writer.write(UInt32(0)); writer.write(UInt32(0))
        writer.write(Int64(0)); writer.write(UInt64(0)); writer.write(UInt64(0)); writer.write(UInt64(0))
        writer.write(Int64(0)); writer.write(UInt32(0)); writer.write(UInt32(path.utf8.count))
        writer.write(objectID); writer.write(objectFlags); writer.write(UInt32(extra.count))
        writer.write(Int32(-1)); writer.write(UInt32(0))
        writer.write(bytes: Array(path.utf8))
        writer.write(bytes: extra)
        return writer.bytes
    }

    static func decode(kind: FileDescriptorRecord.Kind, path: String = "", objectID: UInt64 = 0, objectFlags: UInt32 = 0,
                       extra: [UInt8] = []) throws -> FileDescriptorRecord {
        var reader = ByteReader(bytes(kind: kind, path: path, objectID: objectID, objectFlags: objectFlags, extra: extra))
        return try FileDescriptorRecord(decoding: &reader)
    }

    /// Encodes and decodes again.
    static func roundTrip(_ record: FileDescriptorRecord) throws -> FileDescriptorRecord {
        var writer = ByteWriter()
        record.encode(into: &writer)
        var reader = ByteReader(writer.bytes)
        return try FileDescriptorRecord(decoding: &reader)
    }
}

/// Every kind's payload is typed, validated when the record is decoded, and written back as it was read.
@Suite struct DescriptorPayloadTests {
    static let payloads: [(DescriptorPayload, String)] = [
        (.inherit, ""), (.regular, "/tmp/a"), (.device, "/dev/null"), (.directory, "/tmp"), (.unsupported, "x"),
        (.pipe(PipePayload(inode: 77, bufferSize: 65536, queued: Array("abc".utf8))), "pipe:[77]"),
        (.fifo(PipePayload(inode: 78, queued: [1, 2])), "/tmp/fifo"),
        (.eventfd(EventfdPayload(counter: 9, isSemaphore: true)), "anon_inode:[eventfd]"),
        (.signalfd(SignalfdPayload(mask: 0x4002)), "anon_inode:[signalfd]"),
        (.epoll(EpollPayload(entries: [.init(fd: 3, events: 1, data: 42), .init(fd: 4, events: 5, data: 7)])), "anon_inode:[eventpoll]"),
        (.timerfd({ var t = TimerfdPayload(clock: 1); t.ticks = 2; t.valueSeconds = 3; t.intervalNanoseconds = 4; return t }()),
         "anon_inode:[timerfd]"),
        (.terminal(TerminalPayload(modes: [UInt8](repeating: 7, count: 36))), "/dev/pts/3"),
        (.deleted(FileContentsPayload(size: 10)), "/tmp/x (deleted)"),
        (.memfd(FileContentsPayload(size: 10, seals: 8)), "/memfd:m (deleted)"),
        (.ptyMaster(PtyMasterPayload(number: 3, modes: [UInt8](repeating: 1, count: 36), windowSize: [UInt8](repeating: 2, count: 8),
                                     input: [1], output: [2, 3])), "/dev/ptmx"),
        (.inotify(InotifyPayload(watches: [.init(descriptor: 2, mask: 0x100, inode: 13, device: 0xfe00000, handleType: 1,
                                                 handle: [0x13, 0, 0, 0, 0, 0, 0, 0]),
                                           .init(descriptor: 1, mask: 2, inode: 14, device: 0xfe00000, handleType: 1, handle: [1])])),
         "anon_inode:inotify"),
        (.listeningSocket({ var s = SocketPayload(inode: 5); s.domain = 2; s.type = 1; s.address = [2, 0, 0x1f, 0x90, 127, 0, 0, 1]
                            s.listenBacklog = 16; return s }()), "socket:[5]"),
        (.resetSocket({ var s = SocketPayload(inode: 6); s.domain = 1; s.type = 1; s.peerInode = 7; s.queued = .bytes([1, 2]); return s }()),
         "socket:[6]"),
        (.resetSocket({ var s = SocketPayload(inode: 7); s.domain = 1; s.type = 2; s.queued = .datagrams([[1], [], [2, 3]]); return s }()),
         "socket:[7]"),
    ]

    @Test(arguments: payloads.indices) func everyKindRoundTrips(_ index: Int) throws {
        var record = FileDescriptorRecord()
        record.fd = 5
        (record.payload, record.path) = Self.payloads[index]
        #expect(try DescriptorCodec.roundTrip(record) == record)
    }

    @Test func inotifyWatchesComeBackInDescriptorOrder() throws {
        guard case .inotify(let inotify) = Self.payloads[15].0 else { Issue.record("not inotify"); return }
        #expect(inotify.watches.map(\.descriptor) == [1, 2])
    }

    @Test func payloadsThatDoNotFitTheirKindAreRejectedAtDecode() {
        let bad: [(FileDescriptorRecord.Kind, UInt64, UInt32, [UInt8])] = [
            (.regular, 0, 0, [1]),                                  // a path-only kind with extra bytes
            (.epoll, 0, 0, [UInt8](repeating: 0, count: 15)),      // not whole entries
            (.timerfd, 1, 0, [UInt8](repeating: 0, count: 39)),
            (.timerfd, UInt64(Int32.max) + 1, 0, [UInt8](repeating: 0, count: 40)),
            (.terminal, 0, 0, [UInt8](repeating: 0, count: 35)),
            (.eventfd, 0, 2, []),                                   // an unknown eventfd flag
            (.listeningSocket, 0, 0, [UInt8](repeating: 0, count: 161)),
            (.resetSocket, 0, 0, [UInt8](repeating: 0, count: 159)),
            (.inotify, 0, 0, [UInt8](repeating: 0, count: 159)),
            (.inotify, 0, 0, [UInt8](repeating: 0, count: 160)),   // watch descriptor 0
            (.memfd, 5 << 30, 0, []),
        ]
        for (kind, objectID, objectFlags, extra) in bad {
            #expect(throws: ImageError.self, "\(kind)") {
                try DescriptorCodec.decode(kind: kind, path: "/x", objectID: objectID, objectFlags: objectFlags, extra: extra)
            }
        }
        var address = [UInt8](repeating: 0, count: 160)
        address[24] = 129  // address_bytes over 128
        #expect(throws: ImageError.self) { try DescriptorCodec.decode(kind: .resetSocket, extra: address) }
        var handle = [UInt8](repeating: 0, count: 160)
        handle[0] = 1; handle[28] = 129  // wd 1, handle_bytes over 128
        #expect(throws: ImageError.self) { try DescriptorCodec.decode(kind: .inotify, extra: handle) }
    }

    @Test func inotifyWatchLayoutMatchesTheCStruct() {
        #expect(MemoryLayout<stasis_inotify_watch_t>.size == InotifyPayload.watchSize)
        #expect(MemoryLayout<stasis_inotify_watch_t>.offset(of: \.device) == 16)
        #expect(MemoryLayout<stasis_inotify_watch_t>.offset(of: \.handle_bytes) == 28)
        #expect(MemoryLayout<stasis_inotify_watch_t>.offset(of: \.handle) == 32)
        #expect(MemoryLayout<stasis_socket_state_t>.size == SocketPayload.stateSize)
        #expect(MemoryLayout<stasis_timerfd_state_t>.size == TimerfdPayload.stateSize)
        #expect(MemoryLayout<stasis_epoll_entry_t>.size == EpollPayload.entrySize)
    }
}

@Suite struct DigestTests {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format2($0)) }.joined() }
    func format2(_ b: UInt8) -> String { (b < 16 ? "0" : "") + String(b, radix: 16) }

    @Test func sha256MatchesFIPSVectors() {
        var h = stasis_sha256_t()
        stasis_sha256_init(&h)
        let abc = Array("abc".utf8)
        abc.withUnsafeBytes { stasis_sha256_update(&h, $0.baseAddress!, $0.count) }
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { stasis_sha256_final(&h, $0.baseAddress!) }
        #expect(hex(out) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hmacMatchesRFC4231TestCase2() {
        var m = stasis_hmac_t()
        let key = Array("Jefe".utf8), data = Array("what do ya want for nothing?".utf8)
        key.withUnsafeBufferPointer { stasis_hmac_init(&m, $0.baseAddress!, $0.count) }
        data.withUnsafeBytes { stasis_hmac_update(&m, $0.baseAddress!, $0.count) }
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { stasis_hmac_final(&m, $0.baseAddress!) }
        #expect(hex(out) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.of(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// The three-stream path (buffers of 3 * STASIS_CRC32C_STRIDE bytes and more) against a bitwise CRC32C,
    /// at lengths around its block boundaries and from odd starting states; and its shift constant.
    @Test func crc32cOfLongBuffersMatchesABitwiseCRC() {
        func bitwise(_ state: UInt32, _ bytes: ArraySlice<UInt8>) -> UInt32 {
            var crc = state
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return crc
        }
        let stride = Int(STASIS_CRC32C_STRIDE)
        let zeros = [UInt8](repeating: 0, count: stride)
        #expect(bitwise(0x8000_0000, zeros[...]) == STASIS_CRC32C_SHIFT)
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        let data = (0..<(7 * stride + 100)).map { _ -> UInt8 in
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: seed >> 56)
        }
        for (offset, count) in [(0, 3 * stride), (1, 3 * stride - 1), (3, 3 * stride + 1), (5, 6 * stride + 13), (0, 7 * stride + 100)] {
            let slice = data[offset..<min(offset + count, data.count)]
            let fast = slice.withUnsafeBytes { stasis_crc32c_update(0x1234_5678, $0.baseAddress!, UInt($0.count)) }
            #expect(fast == bitwise(0x1234_5678, slice), "offset \(offset), \(count) bytes")
        }
    }

    /// A datagram socket's queued messages: (u32 length, bytes)... after the 160-byte socket state.
    @Test func datagramSocketRecordSplitsIntoItsMessagesAndRejectsAShortOne() throws {
        var state = ByteWriter()
        state.write(Int32(1)); state.write(Int32(2)); state.write(Int32(0))  // AF_UNIX, SOCK_DGRAM
        state.write(bytes: [UInt8](repeating: 0, count: 160 - 12))
        var messages = ByteWriter()
        for message in ["one", "", "three"] { messages.write(UInt32(message.utf8.count)); messages.write(bytes: Array(message.utf8)) }
        let decoded = try DescriptorCodec.decode(kind: .resetSocket, extra: state.bytes + messages.bytes)
        guard case .resetSocket(let socket) = decoded.payload else { Issue.record("not a socket"); return }
        #expect(socket.queued == .datagrams([Array("one".utf8), [], Array("three".utf8)]))
        #expect(throws: ImageError.self) {
            try DescriptorCodec.decode(kind: .resetSocket, extra: state.bytes + messages.bytes.dropLast())
        }
    }
}
