// libFuzzer target for the image reader that `stasis restart`, `verify` and `inspect` run on untrusted
// files: any input must decode or throw an ImageError, never trap, hang or touch memory it should not.
// Built and run by Fuzz/run.sh (swiftc -sanitize=fuzzer,address), outside SwiftPM.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let source = ByteArraySource(bytes)
    if let image = try? Image.decode(from: source) {
        _ = try? image.verifyPageData(from: source)
        _ = try? image.verifySignature(from: source, key: Array("fuzz".utf8))
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
    return 0
}
