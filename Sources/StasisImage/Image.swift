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
    /// Tree members: descriptors that are one open file description with an earlier member's.
    public var sharedDescriptions: [SharedDescriptionRecord] = []
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

    /// Bytes of page data and file contents in the file (compressed blocks as stored).
    public var storedBytes: UInt64 {
        memoryAreas.reduce(0) { $0 + $1.fileBytes } + fileDescriptors.reduce(0) { $0 + $1.dataBytes }
    }

    /// Bytes of the stored pages as the program had them (equal to the file's when nothing is compressed).
    public var rawPageBytes: UInt64 { memoryAreas.reduce(0) { $0 + $1.rawBytes } }

    /// Largest payload accepted for one record: runs of a 64 GiB area with every other page stored.
    static let maxPayload: UInt32 = 128 << 20

    /// Decodes and validates every record but the page data. One case per record kind, in one
    /// place, so the switch is a little over 80 lines; the framing is `readRecord`'s.
    public static func decode(from source: ImageSource) throws(ImageError) -> Image {
        var image = Image()
        image.header = try ImageHeader.decode(from: source)
        var offset = image.header.recordsOffset
        var count: UInt64 = 0
        var seen = Set<UInt32>()
        while true {
            let (record, payload, next) = try readRecord(at: offset, from: source)
            // A compressed area's PAGE_BLOCKS records follow it, until they hold all its stored pages.
            if record.kind != RecordKind.pageBlocks.rawValue, let area = image.memoryAreas.last, !area.hasAllBlocks {
                throw .invalidRecord(.memoryArea, at: offset, reason: "compressed area \(hex(area.start)) lacks blocks for some of its pages")
            }
            var reader = ByteReader(payload, base: offset + UInt64(RecordHeader.size))
            if record.kind != RecordKind.end.rawValue { image.recordOffsets.append(offset) }
            guard let kind = RecordKind(rawValue: record.kind) else {
                image.unknownRecordCount += 1
                offset = next
                count += 1
                continue
            }
            switch kind {
            case .end:
                let end = try checkEnd(&reader, at: offset, recordCount: count, next: next, size: source.size)
                image.recordOffsets.append(offset)
                image.endOffset = offset
                image.signature = end.mac
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
            case .sharedDescription:
                image.sharedDescriptions.append(try SharedDescriptionRecord(decoding: &reader))
            case .treeProcess:
                throw .invalidRecord(.treeProcess, at: offset, reason: "a tree manifest's record in a process image")
            case .pageBlocks:
                guard image.header.version >= 4, !image.memoryAreas.isEmpty else {
                    throw .invalidRecord(.pageBlocks, at: offset, reason: "not after a compressed memory area")
                }
                let blocks = try PageBlocksRecord(decoding: &reader, header: record)
                try image.memoryAreas[image.memoryAreas.count - 1].append(blocks, header: record, at: offset)
            case .signalActions:
                try checkOnce(kind, &seen, offset)
                image.signalActions = try SignalActionsRecord(decoding: &reader)
            case .thread:
                image.threads.append(try ThreadRecord(decoding: &reader))
            case .fileDescriptor:
                var fd = try FileDescriptorRecord(decoding: &reader)
                if let size = fd.contentsSize {
                    guard record.dataBytes == align(size, to: RecordHeader.pageSize) else {
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
            if record.dataBytes > 0 && kind != .memoryArea && kind != .fileDescriptor && kind != .pageBlocks {
                throw .invalidRecord(kind, at: offset, reason: "page data on a record that has none")
            }
            offset = next
            count += 1
        }
    }

    /// The END record at `offset`: it counts the records before it, names its own offset, and ends the file.
    static func checkEnd(_ reader: inout ByteReader, at offset: UInt64, recordCount: UInt64, next: UInt64,
                         size: UInt64) throws(ImageError) -> EndRecord {
        let end = try EndRecord(decoding: &reader, at: offset)
        guard end.recordCount == recordCount, end.endOffset == offset else {
            throw .invalidRecord(.end, at: offset, reason: "record count or offset does not match")
        }
        guard next == size else {
            throw .invalidRecord(.end, at: offset, reason: "\(size - next) bytes after the END record")
        }
        return end
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
        // Compressed areas: every block against its CRC, and decoded to its pages as a restart would.
        for area in memoryAreas where area.isCompressed {
            for block in area.blocks {
                _ = try block.pageBytes(from: source, area: area.start)
                checked += UInt64(block.storedBytes)
                progress(checked)
            }
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

    /// One record's framing (Docs/IMAGE-FORMAT.md 3): its header, its payload checked against
    /// payload_crc, and where the next record starts. Page data is checked for place, not read.
    static func readRecord(at offset: UInt64, from source: ImageSource) throws(ImageError)
        -> (header: RecordHeader, payload: [UInt8], next: UInt64)
    {
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
            let expected = align(payloadEnd, to: RecordHeader.pageSize)
            guard record.dataOffset == expected, record.dataBytes % RecordHeader.pageSize == 0 else {
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
            next = align(payloadEnd, to: RecordHeader.alignment)
        }
        guard payloadEnd <= source.size else { throw .truncated(at: source.size) }
        let payload = try source.bytes(at: payloadStart, count: Int(record.payloadBytes))
        guard record.computePayloadCRC(payload) == record.payloadCRC else {
            throw .checksumMismatch("the record at byte \(offset)")
        }
        if record.dataBytes == 0 && record.dataCRC != 0 {
            throw .invalidRecord(RecordKind(rawValue: record.kind), at: offset, reason: "data checksum without data")
        }
        return (record, payload, next)
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
        var shared = Set<Int32>()
        for share in sharedDescriptions {
            guard fds.contains(share.fd), shared.insert(share.fd).inserted, share.ownerPID != header.pid else {
                throw .invalidRecord(.sharedDescription, at: 0, reason: "fd \(share.fd) shared with \(share.ownerPID)/\(share.ownerFD)")
            }
        }
    }
}

/// `value` rounded up to a multiple of `boundary` (a power of two).
func align(_ value: UInt64, to boundary: UInt64) -> UInt64 { (value + boundary - 1) & ~(boundary - 1) }
