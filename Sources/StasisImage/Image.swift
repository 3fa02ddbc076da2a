import CStasisABI

/// Random access to an image's bytes. The launcher reads a file; tests pass an array.
/// Page data is never read through this: only headers and payloads.
public protocol ImageSource {
    var size: UInt64 { get }
    func bytes(at offset: UInt64, count: Int) throws(ImageError) -> [UInt8]
}

/// An image held in memory.
public struct ByteArraySource: ImageSource {
    public let contents: [UInt8]
    public init(_ contents: [UInt8]) { self.contents = contents }
    public var size: UInt64 { UInt64(contents.count) }
    public func bytes(at offset: UInt64, count: Int) throws(ImageError) -> [UInt8] {
        guard offset <= size, UInt64(count) <= size - offset else { throw .truncated(at: size) }
        return Array(contents[Int(offset)..<Int(offset) + count])
    }
}

/// A decoded, validated image: every record but the page data.
public struct Image: Equatable, Sendable {
    public var header = ImageHeader()
    public var process = ProcessRecord()
    public var agent = AgentRecord()
    public var signalActions = SignalActionsRecord()
    public var threads: [ThreadRecord] = []
    public var fileDescriptors: [FileDescriptorRecord] = []
    public var memoryAreas: [MemoryAreaRecord] = []
    public var timers: [PosixTimerRecord] = []
    /// Signals pending at the checkpoint with their siginfo, in queue order.
    public var pendingSignals: [PendingSignalRecord] = []
    /// Incremental images: the image their inherited pages come from.
    public var parent: ParentRecord? = nil
    /// Records of kinds this version does not know, skipped by length.
    public var unknownRecordCount = 0
    /// File offset of every record header, END included (for the signature check).
    public var recordOffsets: [UInt64] = []
    /// The END record's HMAC-SHA256, when the image was written with a key.
    public var signature: [UInt8]? = nil
    public var endOffset: UInt64 = 0

    public init() {}

    public var storedBytes: UInt64 {
        memoryAreas.reduce(0) { $0 + $1.dataBytes } + fileDescriptors.reduce(0) { $0 + $1.dataBytes }
    }

    /// Largest payload accepted for one record: runs of a 64 GiB area with every other page stored.
    static let maxPayload: UInt32 = 128 << 20

    public static func decode(from source: ImageSource) throws(ImageError) -> Image {
        guard source.size > 0 else { throw .empty }
        let fixed = try source.bytes(at: 0, count: Int(min(source.size, UInt64(ImageHeader.size))))
        guard fixed.count == ImageHeader.size else {
            _ = try ImageHeader.decodeFixed(fixed)  // names "not an image" before "truncated"
            throw .truncated(at: source.size)
        }
        var (header, programBytes) = try ImageHeader.decodeFixed(fixed)
        let program = try source.bytes(at: UInt64(ImageHeader.size), count: programBytes)
        try ImageHeader.verifyCRC(fixed: fixed, program: program, expected: header.headerCRC)
        header.program = String(decoding: program, as: UTF8.self)
        header.programBytes = programBytes

        var image = Image()
        image.header = header
        var offset = header.recordsOffset
        var count: UInt64 = 0
        var seen = Set<UInt32>()
        while true {
            guard offset <= source.size, source.size - offset >= UInt64(RecordHeader.size) else {
                throw .truncated(at: source.size)
            }
            var headerReader = ByteReader(try source.bytes(at: offset, count: RecordHeader.size), base: offset)
            let record = try RecordHeader(decoding: &headerReader)
            guard record.payloadBytes <= maxPayload else {
                throw .invalidRecord(RecordKind(rawValue: record.kind), at: offset, reason: "payload of \(record.payloadBytes) bytes")
            }
            let payloadStart = offset + UInt64(RecordHeader.size)
            let payloadEnd = payloadStart + UInt64(record.payloadBytes)
            let next: UInt64
            if record.dataBytes > 0 {
                let expected = (payloadEnd + 4095) & ~4095
                guard record.dataOffset == expected, record.dataBytes % 4096 == 0 else {
                    throw .invalidRecord(RecordKind(rawValue: record.kind), at: offset, reason: "page data not at the next page boundary")
                }
                guard record.dataBytes <= source.size, record.dataOffset <= source.size - record.dataBytes else {
                    throw .truncated(at: source.size)
                }
                next = record.dataOffset + record.dataBytes
            } else {
                guard record.dataOffset == 0 else {
                    throw .invalidRecord(RecordKind(rawValue: record.kind), at: offset, reason: "data offset without data")
                }
                next = (payloadEnd + 7) & ~7
            }
            guard payloadEnd <= source.size else { throw .truncated(at: source.size) }
            let payload = try source.bytes(at: payloadStart, count: Int(record.payloadBytes))
            guard record.computePayloadCRC(payload) == record.payloadCRC else {
                throw .checksumMismatch("the record at byte \(offset)")
            }
            if record.dataBytes == 0 && record.dataCRC != 0 {
                throw .invalidRecord(RecordKind(rawValue: record.kind), at: offset, reason: "data checksum without data")
            }
            var reader = ByteReader(payload, base: payloadStart)
            if record.kind != RecordKind.end.rawValue { image.recordOffsets.append(offset) }
            guard let kind = RecordKind(rawValue: record.kind) else {
                image.unknownRecordCount += 1
                offset = next
                count += 1
                continue
            }
            switch kind {
            case .end:
                let recordCount = try reader.read(UInt64.self)
                let endOffset = try reader.read(UInt64.self)
                let magic = try reader.read(UInt64.self)
                let flags = try reader.read(UInt64.self)
                let mac = try reader.readBytes(32)
                guard magic == 0x444E_4549_5341_5453, recordCount == count, endOffset == offset, flags & ~1 == 0 else {
                    throw .invalidRecord(.end, at: offset, reason: "record count or offset does not match")
                }
                image.recordOffsets.append(offset)
                image.endOffset = offset
                image.signature = flags & 1 != 0 ? mac : nil
                guard next == source.size else {
                    throw .invalidRecord(.end, at: offset, reason: "\(source.size - next) bytes after the END record")
                }
                try image.validate()
                return image
            case .process:
                try checkOnce(kind, &seen, offset)
                image.process = try ProcessRecord(decoding: &reader)
            case .agent:
                try checkOnce(kind, &seen, offset)
                image.agent = try AgentRecord(decoding: &reader)
            case .posixTimer:
                image.timers.append(try PosixTimerRecord(decoding: &reader))
            case .pendingSignal:
                guard image.pendingSignals.count < Int(STASIS_MAX_PENDING_SIGNALS) else {
                    throw .invalidRecord(.pendingSignal, at: offset, reason: "more than \(STASIS_MAX_PENDING_SIGNALS)")
                }
                image.pendingSignals.append(try PendingSignalRecord(decoding: &reader))
            case .parent:
                // First, so that a chain can be followed without decoding whole images.
                guard count == 0 else { throw .invalidRecord(.parent, at: offset, reason: "not the first record") }
                image.parent = try ParentRecord(decoding: &reader)
            case .signalActions:
                try checkOnce(kind, &seen, offset)
                image.signalActions = try SignalActionsRecord(decoding: &reader)
            case .thread:
                image.threads.append(try ThreadRecord(decoding: &reader))
            case .fileDescriptor:
                var fd = try FileDescriptorRecord(decoding: &reader)
                if let size = fd.contentsSize {
                    guard record.dataBytes == (size + 4095) & ~4095 else {
                        throw .invalidRecord(.fileDescriptor, at: offset, reason: "fd \(fd.fd): contents of \(record.dataBytes) bytes for a size of \(size)")
                    }
                    fd.dataOffset = record.dataOffset
                    fd.dataBytes = record.dataBytes
                    fd.dataCRC = record.dataCRC
                }
                image.fileDescriptors.append(fd)
            case .memoryArea:
                var area = try MemoryAreaRecord(decoding: &reader, header: record)
                area.dataCRC = record.dataCRC
                if let last = image.memoryAreas.last(where: { !$0.flags.contains(.vsyscall) }),
                    !area.flags.contains(.vsyscall), area.start < last.end
                {
                    throw .invalidRecord(.memoryArea, at: offset, reason: "areas overlap or are out of order")
                }
                image.memoryAreas.append(area)
            }
            if kind != .end, reader.remaining != 0 {
                throw .invalidRecord(kind, at: offset, reason: "\(reader.remaining) unexplained payload bytes")
            }
            if record.dataBytes > 0 && kind != .memoryArea && kind != .fileDescriptor {
                throw .invalidRecord(kind, at: offset, reason: "page data on a record that has none")
            }
            offset = next
            count += 1
        }
    }

    /// Reads every byte of page data and checks it against the records' CRCs (`stasis verify`).
    /// `progress` gets the bytes checked so far.
    public func verifyPageData(from source: ImageSource, progress: (UInt64) -> Void = { _ in }) throws(ImageError) {
        var checked: UInt64 = 0
        var ranges = memoryAreas.filter { $0.dataBytes > 0 }.map {
            ($0.dataOffset, $0.dataBytes, $0.dataCRC, "the page data of area \(hex($0.start))-\(hex($0.end))")
        }
        ranges += fileDescriptors.filter { $0.dataBytes > 0 }.map {
            ($0.dataOffset, $0.dataBytes, $0.dataCRC, "the saved contents of fd \($0.fd)")
        }
        for (start, bytes, expected, what) in ranges {
            try Image.checkData(at: start, bytes: bytes, crc: expected, what: what, from: source) { checked += $0; progress(checked) }
        }
    }

    /// Reads `bytes` of page data at `start` and checks them against `crc` (`what` names them in the error).
    public static func checkData(at start: UInt64, bytes: UInt64, crc expected: UInt32, what: String, from source: ImageSource,
                                 progress: (UInt64) -> Void = { _ in }) throws(ImageError) {
        let chunk: UInt64 = 4 << 20
        var crc = CRC32C()
        var offset: UInt64 = 0
        while offset < bytes {
            let count = Int(min(chunk, bytes - offset))
            crc.update(try source.bytes(at: start + offset, count: count))
            offset += UInt64(count)
            progress(UInt64(count))
        }
        guard crc.value == expected else { throw .checksumMismatch(what) }
    }

    /// Checks the END record's HMAC-SHA256 with `key`: every byte before the mac, CRC fields as zero.
    public func verifySignature(from source: ImageSource, key: [UInt8]) throws(ImageError) {
        guard let signature else { throw .signature("the image is not signed") }
        var mac = stasis_hmac_t()
        key.withUnsafeBufferPointer { stasis_hmac_init(&mac, $0.baseAddress!, $0.count) }
        let covered = endOffset + UInt64(RecordHeader.size) + 32
        var zeroed: [(UInt64, UInt64)] = [(UInt64(ImageHeader.crcOffset), UInt64(ImageHeader.crcOffset) + 4)]
        for offset in recordOffsets { zeroed.append((offset + 24, offset + 32)) }
        var position: UInt64 = 0
        var next = 0
        let chunk: UInt64 = 4 << 20
        while position < covered {
            let count = Int(min(chunk, covered - position))
            var bytes = try source.bytes(at: position, count: count)
            while next < zeroed.count && zeroed[next].0 < position + UInt64(count) {
                let (start, end) = zeroed[next]
                for i in max(start, position)..<min(end, position + UInt64(count)) { bytes[Int(i - position)] = 0 }
                if end <= position + UInt64(count) { next += 1 } else { break }
            }
            bytes.withUnsafeBytes { stasis_hmac_update(&mac, $0.baseAddress!, $0.count) }
            position += UInt64(count)
        }
        var computed = [UInt8](repeating: 0, count: 32)
        computed.withUnsafeMutableBufferPointer { stasis_hmac_final(&mac, $0.baseAddress!) }
        var difference: UInt8 = 0
        for i in 0..<32 { difference |= computed[i] ^ signature[i] }  // constant time
        guard difference == 0 else { throw .signature("the signature does not match this key: the image was changed, or signed with another key") }
    }

    private static func checkOnce(_ kind: RecordKind, _ seen: inout Set<UInt32>, _ offset: UInt64) throws(ImageError) {
        guard seen.insert(kind.rawValue).inserted else { throw .invalidRecord(kind, at: offset, reason: "appears twice") }
    }

    /// Whole-image invariants: the records the restorer needs exist and agree.
    public func validate() throws(ImageError) {
        guard process.pid > 0 else { throw .missingRecord("PROCESS") }
        guard agent.restoreTail != 0 else { throw .missingRecord("AGENT") }
        guard !threads.isEmpty else { throw .missingRecord("THREAD") }
        guard UInt32(threads.count) == header.threadCount else {
            throw .invalidHeader("header says \(header.threadCount) threads, image holds \(threads.count)")
        }
        guard memoryAreas.contains(where: { area in
            area.protection & 4 != 0 && area.start <= agent.restoreTail && agent.restoreTail < area.end
        }) else { throw .invalidRecord(.agent, at: 0, reason: "restore tail is not in executable memory") }
        for thread in threads where thread.xsave.count > Int(header.xsaveSize) {
            throw .invalidRecord(.thread, at: 0, reason: "xsave area larger than the header's")
        }
        if parent == nil, let area = memoryAreas.first(where: { $0.runs.contains(where: \.isInherited) }) {
            throw .invalidRecord(.memoryArea, at: 0, reason: "area \(hex(area.start)) inherits pages but the image has no parent")
        }
        if let parent, parent.pid != header.pid || parent.sequence >= header.sequence {
            throw .invalidRecord(.parent, at: 0, reason: "parent \(parent.pid)/\(parent.sequence) is not an earlier image of process \(header.pid)")
        }
        for signal in pendingSignals where !signal.isProcessDirected && !threads.contains(where: { $0.tid == signal.tid }) {
            throw .invalidRecord(.pendingSignal, at: 0, reason: "signal \(signal.signal) pending for thread \(signal.tid), which the image does not hold")
        }
        var fds = Set<Int32>()
        for fd in fileDescriptors where !fds.insert(fd.fd).inserted {
            throw .invalidRecord(.fileDescriptor, at: 0, reason: "fd \(fd.fd) appears twice")
        }
    }
}

/// Builds image bytes from records: for tests, fuzz seeds and tools. The agent writes the same layout
/// from C structs (CStasisShim); Tests/StasisImageTests checks the two agree.
public struct ImageEncoder {
    public private(set) var writer = ByteWriter()
    private var count: UInt64 = 0

    public init(header: ImageHeader) {
        header.encode(into: &writer)
    }

    public mutating func append(kind: RecordKind, payload: [UInt8], pageData: [UInt8] = []) {
        precondition(pageData.count % 4096 == 0)
        let payloadEnd = writer.bytes.count + RecordHeader.size + payload.count
        let dataOffset = pageData.isEmpty ? 0 : UInt64((payloadEnd + 4095) & ~4095)
        var header = RecordHeader(kind: kind.rawValue, payloadBytes: UInt32(payload.count), dataOffset: dataOffset,
                                  dataBytes: UInt64(pageData.count))
        header.payloadCRC = header.computePayloadCRC(payload)
        header.dataCRC = pageData.isEmpty ? 0 : CRC32C.of(pageData)
        header.encode(into: &writer)
        writer.write(bytes: payload)
        writer.pad(toMultipleOf: pageData.isEmpty ? 8 : 4096)
        writer.write(bytes: pageData)
        count += 1
    }

    public mutating func append(_ parent: ParentRecord) {
        var w = ByteWriter()
        parent.encode(into: &w)
        append(kind: .parent, payload: w.bytes)
    }

    public mutating func append(_ area: MemoryAreaRecord, pageData: [UInt8]) {
        var w = ByteWriter()
        area.encode(into: &w)
        append(kind: .memoryArea, payload: w.bytes, pageData: pageData)
    }

    public mutating func finish() -> [UInt8] {
        var w = ByteWriter()
        w.write(count)
        w.write(UInt64(writer.bytes.count))
        w.write(UInt64(0x444E_4549_5341_5453))
        w.write(UInt64(0))
        w.write(bytes: [UInt8](repeating: 0, count: 32))
        append(kind: .end, payload: w.bytes)
        return writer.bytes
    }
}
