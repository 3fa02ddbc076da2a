import Glibc

/// Exit codes of `stasis`: one per kind of failure, documented in README.md. Scripts depend on them.
enum ExitCode: Int32 {
    case success = 0
    case failure = 1            // anything not listed below
    case usage = 2              // bad command line
    case badImage = 3           // truncated, corrupt, foreign or future-version image
    case incompatibleMachine = 4 // CPU lacks an xsave feature, other kernel vDSO layout
    case filesChanged = 5       // a file the image needs is missing or changed
    case noSuchProcess = 6      // checkpoint: PID not running, or not under stasis
    case checkpointFailed = 7   // the agent could not write the image
    case timeout = 8            // checkpoint: no answer in time
    case restoreFailed = 9      // the restorer could not rebuild the process
    case permissionDenied = 10  // restart: the image is another user's, or of a more privileged process
    case signatureMismatch = 11 // restart/verify --key: unsigned image, or signed with another key, or changed
    case incompleteChain = 12   // restart/verify: an incremental image's parent is missing or not the one it names
    case pidInUse = 13          // restart of a tree: a PID it needs is another process's
    case tooManyDescriptors = 14 // restart: the program's descriptors do not fit under the hard RLIMIT_NOFILE
    case cannotExecute = 127    // run: PROGRAM could not be executed
}

/// A failure with its one-line message (what happened and what to do) and exit code.
struct LauncherError: Error {
    var code: ExitCode
    var message: String
    init(_ code: ExitCode, _ message: String) {
        self.code = code
        self.message = message
    }
}
