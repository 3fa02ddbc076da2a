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
        for fd in image.fileDescriptors {
            _ = fd.epollEntries
            _ = fd.timerState
        }
    }
    return 0
}
