// libFuzzer target for the image reader that `stasis restart`, `verify` and `inspect` run on untrusted
// files, and for the tree manifest reader (DIR/tree of a tree checkpoint): any input must decode or
// throw an ImageError, never trap, hang or touch memory it should not. Every input goes to both.
// Built and run by Fuzz/run.sh (swiftc -sanitize=fuzzer,address), outside SwiftPM.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let source = ByteArraySource(bytes)
    if let image = try? Image.decode(from: source) {
        _ = try? image.verifyPageData(from: source)
        _ = try? image.verifySignature(from: source, key: Array("fuzz".utf8))
        // A compressed area's stored pages read back through its blocks (what compact and a chain's
        // restart do), in two ranges that split a block when it has more than one page.
        for area in image.memoryAreas where area.isCompressed && area.rawBytes <= 64 << 20 {
            var reader = StoredPageReader()
            let page = RecordHeader.pageSize
            let half = area.rawBytes / page / 2 * page
            _ = try? reader.read(area, at: 0, count: half, from: source)
            _ = try? reader.read(area, at: half, count: area.rawBytes - half, from: source)
        }
        // Every payload was decoded and validated with the image: encoding it again must give the
        // same record (a payload that cannot round-trip is a decoder that accepts more than it keeps).
        // (The path is set aside: invalid UTF-8 in it comes back as U+FFFD, longer than the original.)
        for fd in image.fileDescriptors {
            var copy = fd
            copy.path = "/"
            var writer = ByteWriter()
            copy.encode(into: &writer)
            var reader = ByteReader(writer.bytes)
            guard let again = try? FileDescriptorRecord(decoding: &reader), again.payload == fd.payload else {
                fatalError("fd \(fd.fd): a decoded descriptor record does not decode to itself")
            }
        }
    }
    if let manifest = try? TreeManifest.decode(from: source) {
        _ = try? manifest.verifySignature(from: source, key: Array("fuzz".utf8))
        // A decoded manifest encodes to a manifest that decodes to the same processes (the encoder is the tests').
        // Names are set aside: invalid UTF-8 comes back as U+FFFD, longer than the original (as fd paths above).
        var copy = manifest
        copy.header.program = ""
        for i in copy.processes.indices { copy.processes[i].comm = "" }
        guard let again = try? TreeManifest.decode(from: ByteArraySource(copy.encode())), again.processes == copy.processes else {
            fatalError("a decoded tree manifest does not decode to itself")
        }
        // The member checks run on any header and image the fuzzer can make of the same bytes.
        for process in manifest.members {
            _ = try? manifest.checkMemberSize(of: process, size: source.size)
            _ = try? manifest.checkMemberHeader(of: process, header: manifest.header)
        }
    }
    return 0
}
