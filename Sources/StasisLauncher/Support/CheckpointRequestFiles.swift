import CStasisABI

/// The launcher's side of CONTROL/request and CONTROL/result (stasis_request.h).
struct CheckpointRequestFile: Equatable {
    var imageDirectory: String?
    var keyFile: String?
    var skipUnsupported = false, noFork = false, incremental = false, full = false
    var compress = false, noCompress = false

    /// Anything the agent's defaults would not do: only then is a request file written.
    var isNeeded: Bool {
        imageDirectory != nil || keyFile != nil || skipUnsupported || noFork || incremental || full || compress || noCompress
    }

    /// stasis_checkpoint_request_t's bytes; nil if a path does not fit.
    func encoded() -> [UInt8]? {
        var request = stasis_checkpoint_request_t()
        request.magic = STASIS_REQUEST_MAGIC
        request.flags = (skipUnsupported ? STASIS_REQUEST_SKIP_UNSUPPORTED : 0) | (noFork ? STASIS_REQUEST_NO_FORK : 0)
            | (incremental ? STASIS_REQUEST_INCREMENTAL : 0) | (full ? STASIS_REQUEST_FULL : 0)
            | (compress ? STASIS_REQUEST_COMPRESS : 0) | (noCompress ? STASIS_REQUEST_NO_COMPRESS : 0)
        var bytes = withUnsafeBytes(of: &request) { Array($0) }
        for (text, offset) in [(imageDirectory, Int(STASIS_REQUEST_IMAGE_DIR_OFFSET)), (keyFile, Int(STASIS_REQUEST_KEY_FILE_OFFSET))] {
            guard let text else { continue }
            let utf8 = Array(text.utf8)
            guard utf8.count < Int(STASIS_MAX_PATH), !utf8.contains(0) else { return nil }
            bytes.replaceSubrange(offset..<offset + utf8.count, with: utf8)
        }
        return bytes
    }
}

/// CONTROL/result, decoded.
struct CheckpointResultFile: Equatable {
    enum Status: Equatable { case ok, error, busy }
    var status: Status
    var image = ""
    var message = ""
    var threads = 0, chainLength = 1, maxChain = 0, processes = 1
    var incrementalUnavailable = false
    var freezeNanoseconds: UInt64 = 0, pauseNanoseconds: UInt64 = 0, totalNanoseconds: UInt64 = 0

    /// nil unless `bytes` is a whole stasis_checkpoint_result_t with its magic and a known status.
    init?(decoding bytes: [UInt8]) {
        guard bytes.count == MemoryLayout<stasis_checkpoint_result_t>.size else { return nil }
        let result = bytes.withUnsafeBytes { $0.loadUnaligned(as: stasis_checkpoint_result_t.self) }
        guard result.magic == STASIS_RESULT_MAGIC else { return nil }
        switch result.status {
        case STASIS_RESULT_OK: status = .ok
        case STASIS_RESULT_ERROR: status = .error
        case STASIS_RESULT_BUSY: status = .busy
        default: return nil
        }
        func text(at offset: Int, capacity: Int) -> String {
            let field = bytes[offset..<offset + capacity]
            return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
        }
        image = text(at: Int(STASIS_RESULT_IMAGE_OFFSET), capacity: Int(STASIS_MAX_PATH))
        message = text(at: Int(STASIS_RESULT_MESSAGE_OFFSET), capacity: Int(STASIS_RESULT_MESSAGE_MAX))
        threads = Int(result.threads)
        processes = max(Int(result.processes), 1)
        chainLength = Int(result.chain_length)
        maxChain = Int(result.max_chain)
        incrementalUnavailable = result.incremental_unavailable != 0
        freezeNanoseconds = result.freeze_ns
        pauseNanoseconds = result.pause_ns
        totalNanoseconds = result.total_ns
    }
}
