import CStasisABI
import Glibc
import StasisImage
import StasisSystem

/// `stasis compact IMAGE`: an incremental image made whole. Its inherited pages are copied in from
/// its parents and the PARENT record dropped; everything else (header, sequence, time, records) stays,
/// so the program's next incremental image can still name it as its parent, and its old parents are
/// no longer needed (`--keep` then removes them). In place by default (temp, fsync, rename over it).
enum CompactCommand {
    static let help = """
        usage: stasis compact [--key FILE] [--output OUT] IMAGE

        Makes an incremental image standalone: copies the pages it inherits from its chain of parent
        images into it and drops the reference to its parent. Replaces IMAGE atomically (or writes OUT).
        A signed chain needs --key FILE to sign the result. `stasis checkpoint` does this by itself once
        a chain reaches the program's --max-chain.
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: ["--key", "--output"], flags: ["--help", "--json"], command: "compact")
        if options.flags.contains("--help") {
            printOut(help)
            return
        }
        guard options.positional.count == 1 else { throw LauncherError(.usage, "compact needs one IMAGE") }
        let key = try options.values["--key"].map { (path) throws(LauncherError) in try RestartCommand.readKey(path) }
        let path = options.positional[0]
        let written = try compact(path, output: options.values["--output"], key: key)
        printOut(written)
    }

    /// Writes the standalone image and returns its path; IMAGE unchanged if it is not incremental.
    @discardableResult
    static func compact(_ path: String, output: String? = nil, key: [UInt8]?) throws(LauncherError) -> String {
        let source = try FileImageSource(path: path)
        let image = try source.decode()
        guard image.parent != nil else { return path }
        if image.signature != nil && key == nil {
            throw LauncherError(.signatureMismatch, "\(path) is signed: compact it with --key FILE to sign the result")
        }
        if let key {
            do { try image.verifySignature(from: source, key: key) } catch {
                throw LauncherError(.signatureMismatch, "\(path): \(error)")
            }
        }
        let chain = try ImageChain.load(image, source: source)
        let segments = try chain.pageSegments()
        try RestartCommand.verifyParentData(chain, segments)
        let target = output ?? path
        let directory = ImageChain.directoryName(of: target)
        let temp = directory + "/.compact-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode: 0o600)
        } catch {
            throw LauncherError(.failure, "cannot create \(temp): \(error)")
        }
        var writer = ImageRewriter(fd: fd, key: key)
        do throws(LauncherError) {
            try writer.rewrite(image, chain: chain, segments: segments)
            guard fsync(fd.rawValue) == 0 else { throw LauncherError(.failure, "cannot sync \(temp): \(Errno.current)") }
        } catch {
            fd.closeAfterError()
            unlink(temp)
            throw error
        }
        fd.closeAfterError()
        guard rename(temp, target) == 0 else {
            let error = Errno.current
            unlink(temp)
            throw LauncherError(.failure, "cannot replace \(target): \(error)")
        }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
        return target
    }
}

/// Streams an image's records into a new file: page data is re-laid (data_offset moves), CRCs and
/// the END record recomputed, the signature too when there is a key. MEMORY_AREA records with
/// inherited runs get their parents' pages; the PARENT record is left out.
struct ImageRewriter {
    let fd: FileDescriptor
    var offset: UInt64 = 0
    var mac: stasis_hmac_t? = nil
    var records: UInt64 = 0

    init(fd: FileDescriptor, key: [UInt8]?) {
        self.fd = fd
        if let key {
            var m = stasis_hmac_t()
            key.withUnsafeBufferPointer { stasis_hmac_init(&m, $0.baseAddress!, $0.count) }
            mac = m
        }
    }

    /// Writes `bytes`; the signature covers `signed` instead when given (CRC fields as zero).
    mutating func write(_ bytes: [UInt8], signed: [UInt8]? = nil) throws(LauncherError) {
        if mac != nil {
            let covered = signed ?? bytes
            covered.withUnsafeBytes { stasis_hmac_update(&mac!, $0.baseAddress!, $0.count) }
        }
        do { try fd.writeAll(bytes) } catch { throw LauncherError(.failure, "cannot write the compacted image: \(error)") }
        offset += UInt64(bytes.count)
    }

    mutating func pad(to boundary: UInt64) throws(LauncherError) {
        let gap = (boundary - offset % boundary) % boundary
        if gap > 0 { try write([UInt8](repeating: 0, count: Int(gap))) }
    }

    func patch(_ value: UInt32, at position: UInt64) throws(LauncherError) {
        var v = value.littleEndian
        guard pwrite(fd.rawValue, &v, 4, off_t(position)) == 4 else {
            throw LauncherError(.failure, "cannot write the compacted image: \(Errno.current)")
        }
    }

    /// One record: header (CRC fields zero, patched after), payload, padding, then page data from
    /// `data` (a list of (source, offset, bytes) read in order).
    mutating func record(kind: UInt32, payload: [UInt8], data: [(ImageSource, UInt64, UInt64)]) throws(LauncherError) {
        let start = offset
        let dataBytes = data.reduce(UInt64(0)) { $0 + $1.2 }
        let payloadEnd = start + UInt64(RecordHeader.size) + UInt64(payload.count)
        let dataOffset = dataBytes > 0 ? (payloadEnd + 4095) & ~4095 : 0
        let header = RecordHeader(kind: kind, payloadBytes: UInt32(payload.count), dataOffset: dataOffset, dataBytes: dataBytes)
        let payloadCRC = header.computePayloadCRC(payload)
        var w = ByteWriter()
        header.encode(into: &w)
        try write(w.bytes)
        try write(payload)
        try pad(to: dataBytes > 0 ? 4096 : 8)
        var crc = CRC32C()
        for (source, at, bytes) in data {
            var done: UInt64 = 0
            while done < bytes {
                let count = Int(min(UInt64(4 << 20), bytes - done))
                let chunk: [UInt8]
                do { chunk = try source.bytes(at: at + done, count: count) } catch {
                    throw LauncherError(.badImage, "cannot read page data: \(error)")
                }
                crc.update(chunk)
                try write(chunk)
                done += UInt64(count)
            }
        }
        try patch(payloadCRC, at: start + 24)
        if dataBytes > 0 { try patch(crc.value, at: start + 28) }
        records += 1
    }

    mutating func rewrite(_ image: Image, chain: ImageChain, segments: [stasis_page_segment_t]) throws(LauncherError) {
        let source = chain.members[0].source
        // Header and program path as they are (same identity); the signature sees header_crc as zero.
        let prefix: [UInt8]
        do { prefix = try source.bytes(at: 0, count: Int(image.header.recordsOffset)) } catch {
            throw LauncherError(.badImage, "\(source.path): \(error)")
        }
        var signedPrefix = prefix
        for i in ImageHeader.crcOffset..<ImageHeader.crcOffset + 4 { signedPrefix[i] = 0 }
        try write(prefix, signed: signedPrefix)
        var areaIndex = 0
        var segmentIndex = 0
        for recordOffset in image.recordOffsets where recordOffset != image.endOffset {
            let headerBytes: [UInt8]
            do { headerBytes = try source.bytes(at: recordOffset, count: RecordHeader.size) } catch {
                throw LauncherError(.badImage, "\(source.path): \(error)")
            }
            var reader = ByteReader(headerBytes, base: recordOffset)
            let header: RecordHeader
            let payload: [UInt8]
            do {
                header = try RecordHeader(decoding: &reader)
                payload = try source.bytes(at: recordOffset + UInt64(RecordHeader.size), count: Int(header.payloadBytes))
            } catch {
                throw LauncherError(.badImage, "\(source.path): \(error)")
            }
            let data: [(ImageSource, UInt64, UInt64)] = header.dataBytes > 0 ? [(source, header.dataOffset, header.dataBytes)] : []
            switch RecordKind(rawValue: header.kind) {
            case .parent:
                continue
            case .memoryArea:
                var area = image.memoryAreas[areaIndex]
                areaIndex += 1
                guard area.runs.contains(where: \.isInherited) else {
                    try record(kind: header.kind, payload: payload, data: data)
                    continue
                }
                // Own runs and the segments inside this area, by address: one run list, one data stream.
                var pieces: [(address: UInt64, bytes: UInt64, source: ImageSource, offset: UInt64)] = []
                var dataOffset = header.dataOffset
                for run in area.runs where !run.isInherited {
                    pieces.append((area.start + run.firstPage * 4096, run.pageCount * 4096, source, dataOffset))
                    dataOffset += run.pageCount * 4096
                }
                while segmentIndex < segments.count, segments[segmentIndex].address < area.end {
                    let s = segments[segmentIndex]
                    pieces.append((s.address, s.bytes, chain.members[Int(s.image) + 1].source, s.file_offset))
                    segmentIndex += 1
                }
                pieces.sort { $0.address < $1.address }
                area.runs = []
                for piece in pieces {
                    let first = (piece.address - area.start) / 4096
                    if let last = area.runs.last, last.firstPage + last.pageCount == first {
                        area.runs[area.runs.count - 1].pageCount += piece.bytes / 4096
                    } else {
                        area.runs.append(.init(firstPage: first, pageCount: piece.bytes / 4096))
                    }
                }
                var w = ByteWriter()
                area.encode(into: &w)
                try record(kind: header.kind, payload: w.bytes, data: pieces.map { ($0.source, $0.offset, $0.bytes) })
            default:  // every other record as it is, unknown kinds included; its page data moves
                try record(kind: header.kind, payload: payload, data: data)
            }
        }
        // END: counts, and the signature of everything before its mac.
        let endStart = offset
        var end = ByteWriter()
        end.write(records)
        end.write(endStart)
        end.write(UInt64(0x444E_4549_5341_5453))
        end.write(UInt64(mac != nil ? 1 : 0))
        var header = RecordHeader(kind: RecordKind.end.rawValue, payloadBytes: 64)
        var w = ByteWriter()
        header.encode(into: &w)
        try write(w.bytes)
        try write(end.bytes)
        var signature = [UInt8](repeating: 0, count: 32)
        if mac != nil { signature.withUnsafeMutableBufferPointer { stasis_hmac_final(&mac!, $0.baseAddress!) } }
        mac = nil
        try write(signature)
        header.payloadCRC = header.computePayloadCRC(end.bytes + signature)
        try patch(header.payloadCRC, at: endStart + 24)
    }
}
