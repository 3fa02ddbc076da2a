import CStasisABI
import Testing
@testable import StasisLauncher

/// CONTROL/request and CONTROL/result (stasis_request.h): the launcher's encoding against the C layout.
struct CheckpointRequestFileTests {
    @Test func layoutMatchesTheHeader() {
        #expect(MemoryLayout<stasis_checkpoint_request_t>.size == 8 + 2 * Int(STASIS_MAX_PATH))
        #expect(MemoryLayout<stasis_checkpoint_request_t>.offset(of: \.image_dir) == Int(STASIS_REQUEST_IMAGE_DIR_OFFSET))
        #expect(MemoryLayout<stasis_checkpoint_request_t>.offset(of: \.key_file) == Int(STASIS_REQUEST_KEY_FILE_OFFSET))
        #expect(MemoryLayout<stasis_checkpoint_result_t>.offset(of: \.image) == Int(STASIS_RESULT_IMAGE_OFFSET))
        #expect(MemoryLayout<stasis_checkpoint_result_t>.offset(of: \.message) == Int(STASIS_RESULT_MESSAGE_OFFSET))
    }

    @Test func encodesFlagsAndPaths() throws {
        let request = CheckpointRequestFile(imageDirectory: "/data/ckpt", keyFile: "/etc/key", skipUnsupported: true,
                                            noFork: false, incremental: true, full: false)
        #expect(request.isNeeded)
        let bytes = try #require(request.encoded())
        #expect(bytes.count == MemoryLayout<stasis_checkpoint_request_t>.size)
        let decoded = bytes.withUnsafeBytes { $0.loadUnaligned(as: stasis_checkpoint_request_t.self) }
        #expect(decoded.magic == STASIS_REQUEST_MAGIC)
        #expect(decoded.flags == STASIS_REQUEST_SKIP_UNSUPPORTED | STASIS_REQUEST_INCREMENTAL)
        let dir = Int(STASIS_REQUEST_IMAGE_DIR_OFFSET), key = Int(STASIS_REQUEST_KEY_FILE_OFFSET)
        #expect(Array(bytes[dir..<dir + 11]) == Array("/data/ckpt\0".utf8))
        #expect(Array(bytes[key..<key + 9]) == Array("/etc/key\0".utf8))
    }

    @Test func defaultsNeedNoFileAndOverlongPathsAreRefused() {
        #expect(!CheckpointRequestFile().isNeeded)
        let long = "/" + String(repeating: "a", count: Int(STASIS_MAX_PATH))
        #expect(CheckpointRequestFile(imageDirectory: long).encoded() == nil)
    }

    private func resultBytes(status: UInt32, image: String = "", message: String = "", magic: UInt32 = STASIS_RESULT_MAGIC) -> [UInt8] {
        var result = stasis_checkpoint_result_t()
        result.magic = magic
        result.status = status
        result.threads = 3
        result.chain_length = 2
        result.max_chain = 8
        result.pause_ns = 1234
        var bytes = withUnsafeBytes(of: &result) { Array($0) }
        let i = Int(STASIS_RESULT_IMAGE_OFFSET), m = Int(STASIS_RESULT_MESSAGE_OFFSET)
        bytes.replaceSubrange(i..<i + image.utf8.count, with: Array(image.utf8))
        bytes.replaceSubrange(m..<m + message.utf8.count, with: Array(message.utf8))
        return bytes
    }

    @Test func decodesEachStatus() throws {
        let ok = try #require(CheckpointResultFile(decoding: resultBytes(status: STASIS_RESULT_OK, image: "/d/p-1-0001.stasis")))
        #expect(ok.status == .ok && ok.image == "/d/p-1-0001.stasis" && ok.threads == 3 && ok.chainLength == 2)
        #expect(ok.maxChain == 8 && ok.pauseNanoseconds == 1234)
        let error = try #require(CheckpointResultFile(decoding: resultBytes(status: STASIS_RESULT_ERROR, message: "disk full")))
        #expect(error.status == .error && error.message == "disk full")
        #expect(CheckpointResultFile(decoding: resultBytes(status: STASIS_RESULT_BUSY))?.status == .busy)
    }

    @Test func refusesWhatIsNotAResult() {
        #expect(CheckpointResultFile(decoding: []) == nil)
        #expect(CheckpointResultFile(decoding: Array("ok /tmp/x.stasis\n".utf8)) == nil)
        #expect(CheckpointResultFile(decoding: resultBytes(status: 7)) == nil)
        #expect(CheckpointResultFile(decoding: resultBytes(status: STASIS_RESULT_OK, magic: 1)) == nil)
        #expect(CheckpointResultFile(decoding: Array(resultBytes(status: STASIS_RESULT_OK).dropLast())) == nil)
    }
}
