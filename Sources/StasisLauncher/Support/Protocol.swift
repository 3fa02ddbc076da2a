import CStasisABI

// The Swift side of CStasisABI/include/stasis_protocol.h (environment, request token, restorer argv,
// status lines). The names come from the header; the enums mirror its numbers and
// StasisLauncherTests/ProtocolTests checks them against it.

/// The variables `stasis run` sets for the agent's constructor (constructor.c).
enum AgentVariable: String, CaseIterable {
    case directory = "STASIS_DIR"
    case signal = "STASIS_SIGNAL"
    case keep = "STASIS_KEEP"
    case keyFile = "STASIS_KEY_FILE"
    case exitSignal = "STASIS_EXIT_SIGNAL"
    case exitCode = "STASIS_EXIT_CODE"
    case fork = "STASIS_FORK"
    case skipUnsupported = "STASIS_SKIP_UNSUPPORTED"
    case incremental = "STASIS_INCREMENTAL"
    case compress = "STASIS_COMPRESS"
    case maxChain = "STASIS_MAX_CHAIN"

    /// The header's name for it (the test compares the two).
    var headerName: String {
        switch self {
        case .directory: STASIS_ENV_DIR
        case .signal: STASIS_ENV_SIGNAL
        case .keep: STASIS_ENV_KEEP
        case .keyFile: STASIS_ENV_KEY_FILE
        case .exitSignal: STASIS_ENV_EXIT_SIGNAL
        case .exitCode: STASIS_ENV_EXIT_CODE
        case .fork: STASIS_ENV_FORK
        case .skipUnsupported: STASIS_ENV_SKIP_UNSUPPORTED
        case .incremental: STASIS_ENV_INCREMENTAL
        case .compress: STASIS_ENV_COMPRESS
        case .maxChain: STASIS_ENV_MAX_CHAIN
        }
    }
}

/// Positions in the restorer's argv (stasis_protocol.h `enum stasis_restorer_argument`).
enum RestorerArgument: Int, CaseIterable {
    case imageFD = 1
    case statusFD = 2
    case keyFD = 3
    case planFD = 4
    case lazy = 5
    case pagerDelayMilliseconds = 6
    case goFD = 7
    case treeFlags = 8

    /// The header's number for it (the test compares the two).
    var headerValue: Int {
        let value: stasis_restorer_argument
        switch self {
        case .imageFD: value = STASIS_RESTORER_ARG_IMAGE_FD
        case .statusFD: value = STASIS_RESTORER_ARG_STATUS_FD
        case .keyFD: value = STASIS_RESTORER_ARG_KEY_FD
        case .planFD: value = STASIS_RESTORER_ARG_PLAN_FD
        case .lazy: value = STASIS_RESTORER_ARG_LAZY
        case .pagerDelayMilliseconds: value = STASIS_RESTORER_ARG_PAGER_DELAY_MS
        case .goFD: value = STASIS_RESTORER_ARG_GO_FD
        case .treeFlags: value = STASIS_RESTORER_ARG_TREE_FLAGS
        }
        return Int(value.rawValue)
    }

    /// The restorer's argc bounds (argv[0] included).
    static var headerArgumentCount: ClosedRange<Int> {
        Int(STASIS_RESTORER_ARGC_MIN.rawValue)...Int(STASIS_RESTORER_ARGC_MAX.rawValue)
    }
}

/// The restorer's argv: `stasis-restorer IMAGE_FD STATUS_FD KEY_FD PLAN_FD LAZY [PAGER_DELAY_MS [GO_FD TREE_FLAGS]]`.
struct RestorerArguments: Equatable {
    var imageFD: Int32
    var statusFD: Int32
    var keyFD: Int32 = -1
    var planFD: Int32 = -1
    var lazy = true
    /// Diagnostics and tests (STASIS_PAGER_DELAY_MS): the pager serves only faults for this long.
    var pagerDelayMilliseconds: Int?
    /// A member of a process tree: the go pipe's read end, and what it does at the go.
    var tree: (goFD: Int32, flags: TreeFlags)?
    /// Restored inside a user namespace of ours: every thread drops its capabilities before the program runs.
    var dropCapabilities = false

    /// STASIS_RESTORER_TREE_*.
    struct TreeFlags: OptionSet, Equatable {
        let rawValue: UInt32
        /// PR_SET_CHILD_SUBREAPER after the go.
        static let subreaper = TreeFlags(rawValue: STASIS_RESTORER_TREE_SUBREAPER)
    }

    static func == (a: RestorerArguments, b: RestorerArguments) -> Bool { a.strings == b.strings }

    /// A pager delay from the environment's text: used when 1...600000, else ignored.
    static func pagerDelay(fromEnvironment text: String?) -> Int? {
        guard let text, let delay = Int(text), delay > 0, delay <= 600_000 else { return nil }
        return delay
    }

    /// argv[1...], in the header's order.
    var strings: [String] {
        var values: [RestorerArgument: String] = [
            .imageFD: String(imageFD), .statusFD: String(statusFD), .keyFD: String(keyFD),
            .planFD: String(planFD), .lazy: lazy ? "1" : "0",
        ]
        if let pagerDelayMilliseconds { values[.pagerDelayMilliseconds] = String(pagerDelayMilliseconds) }
        if tree != nil || dropCapabilities {
            values[.pagerDelayMilliseconds] = values[.pagerDelayMilliseconds] ?? "0"  // positional: 0 is none
            values[.goFD] = String(tree?.goFD ?? -1)
            let flags = (tree?.flags.rawValue ?? 0) | (dropCapabilities ? STASIS_RESTORER_DROP_CAPABILITIES : 0)
            values[.treeFlags] = String(flags)
        }
        return RestorerArgument.allCases.compactMap { values[$0] }
    }
}

/// One line of the status pipe (restorer and lazy pager to launcher).
enum StatusLine: Equatable {
    case ok
    case warning(String)
    case error(String)
    case corrupt(String)
    case other

    init(_ line: Substring) {
        if line == STASIS_STATUS_OK {
            self = .ok
        } else if line.hasPrefix(STASIS_STATUS_WARNING) {
            self = .warning(String(line.dropFirst(STASIS_STATUS_WARNING.count)))
        } else if line.hasPrefix(STASIS_STATUS_ERROR) {
            self = .error(String(line.dropFirst(STASIS_STATUS_ERROR.count)))
        } else if line.hasPrefix(STASIS_STATUS_CORRUPT) {
            self = .corrupt(String(line.dropFirst(STASIS_STATUS_CORRUPT.count)))
        } else {
            self = .other
        }
    }

    static func parse(_ bytes: [UInt8]) -> [StatusLine] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(StatusLine.init)
    }
}

/// A `stasis checkpoint` request's sigqueue value: random, never one of the agent's own magics.
func randomRequestToken() -> UInt64 {
    while true {
        let token = UInt64.random(in: requestTokenMinimum...UInt64.max)
        // The high half of a tree's freeze request (stasis_tree.h) is never a request's.
        if token >> 32 != UInt64(STASIS_TREE_MAGIC) { return token }
    }
}

/// The smallest request token; the agent's own sigqueue values are below it.
let requestTokenMinimum = UInt64(STASIS_REQUEST_TOKEN_MIN)
/// The agent's own sigqueue values of the trigger (freeze, wake).
let agentSignalValues: [UInt64] = [UInt64(STASIS_FREEZE_MAGIC), UInt64(STASIS_WAKE_MAGIC)]
