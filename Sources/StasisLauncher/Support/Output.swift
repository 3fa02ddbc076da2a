import StasisSystem

/// Writes one line to stderr. A failed write is dropped: stderr is where it would have been reported.
func printError(_ line: String) {
    let text = line.hasSuffix("\n") ? line : line + "\n"
    try? FileDescriptor(rawValue: 2).writeAll(Array(text.utf8))  // EPIPE/EBADF on stderr: nowhere to report it
}

/// Writes one line to stdout, unbuffered (scripts read it while we wait). A failed write is dropped,
/// as a closed stdout is the reader's choice.
func printOut(_ line: String) {
    try? FileDescriptor(rawValue: 1).writeAll(Array((line + "\n").utf8))  // EPIPE: the reader went away
}
