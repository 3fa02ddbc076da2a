import Glibc
import CStasisABI
import StasisSystem

/// `stasis checkpoint PID`: asks the agent in PID for an image and waits until it is complete.
///
/// Protocol (stasis_request.h, Docs/ARCHITECTURE.md 2.6): make a private CONTROL directory named by a
/// random TOKEN, write CONTROL/request, sigqueue the trigger signal with value TOKEN (again until the agent
/// creates CONTROL/accepted), wait for CONTROL/result (ok, error, or busy: ask again).
enum CheckpointCommand {
    static let help = """
        usage: stasis checkpoint [--dir DIR] [--timeout SECONDS] [--key FILE] [--incremental | --full] [--compress | --no-compress] [--skip-unsupported] [--no-fork] [--json] PID

        Checkpoints a program started with `stasis run`; waits until the image is complete and prints
        its path as the last line of stdout. The program keeps running.
          --dir DIR          write the image to DIR instead of the program's image directory (created,
                             mode 0700, if missing)
          --timeout SECONDS  give up after SECONDS (default 600)
          --key FILE         sign this image (and the program's later ones) with FILE's key (HMAC-SHA256)
          --no-fork          write this image from inside the frozen program instead of from a
                             copy-on-write copy (pause_ns in --json shows the difference)
          --incremental      store only the pages written since the program's previous image, which this
                             one then needs at restart (the first --incremental image is a full one; so is
                             one whose parent is gone or in another directory)
          --full             a full image even when the program runs with `stasis run --incremental`
                             (an image that reaches the program's --max-chain is compacted here: made
                             standalone in place, so the next incremental image builds on it)
          --compress         store page data in compressed blocks (image format 4; blocks that do not
                             shrink are stored as they are); the default with `stasis run --compress`
          --no-compress      plain page data even when the program runs with `stasis run --compress`
          --skip-unsupported checkpoint even with descriptors Stasis cannot save (sockets...): restart puts
                             /dev/null in their place, with a warning
          --json             print {"pid", "image", "threads", "processes", "freeze_ns", "pause_ns", "total_ns"} instead of the path
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        guard let command = try CheckpointOptions(arguments) else {
            printOut(help)
            return
        }
        let (options, pid, timeout) = (command.options, command.pid, command.timeout)

        let (uid, signal, defaultDirectory) = try target(pid)
        // Created when missing (0700, owned by the program's user: its agent writes there).
        let directory = try options.values["--dir"].map { (dir) throws(LauncherError) in try makeImageDirectory(dir, owner: uid) }
        try waitUntilReady(pid, signal: signal)
        let control = try ControlDirectory.create(uid: uid)
        defer { control.remove() }
        let skip = options.flags.contains("--skip-unsupported")
        let noFork = options.flags.contains("--no-fork")
        let incremental = options.flags.contains("--incremental")
        let full = options.flags.contains("--full")
        if incremental && full { throw LauncherError(.usage, "--incremental and --full exclude each other") }
        let compress = options.flags.contains("--compress"), noCompress = options.flags.contains("--no-compress")
        if compress && noCompress { throw LauncherError(.usage, "--compress and --no-compress exclude each other") }
        var request = CheckpointRequestFile(imageDirectory: directory, skipUnsupported: skip, noFork: noFork,
                                            incremental: incremental, full: full, compress: compress, noCompress: noCompress)
        if let keyPath = options.values["--key"] {
            _ = try readKeyFile(keyPath)
            guard let absolute = absolutePath(keyPath) else { throw LauncherError(.usage, "cannot resolve key file \(keyPath)") }
            request.keyFile = absolute  // the agent reads the file itself: the key never lands in /tmp
        }
        if request.isNeeded {
            guard let bytes = request.encoded() else {
                throw LauncherError(.usage, "the image directory or key file path is too long (at most \(STASIS_MAX_PATH - 1) bytes)")
            }
            try writeAtomically(control.file(STASIS_REQUEST_FILE), bytes, owner: uid)
        }
        let resultPath = control.file(STASIS_RESULT_FILE)
        let acceptedPath = control.file(STASIS_ACCEPTED_FILE)
        var signalling = RequestSignal(pid: pid, signal: signal, token: control.token)
        try signalling.send()
        let deadline = now() + timeout
        let progress = isatty(2) != 0 ? Progress(pid: pid, directory: directory ?? defaultDirectory) : nil
        defer { progress?.finish() }
        while true {
            progress?.update()
            // ENOENT until the agent answers; the agent renames a whole file into place.
            if let bytes = try? readFile(resultPath) {
                guard let result = CheckpointResultFile(decoding: bytes) else {
                    throw LauncherError(.checkpointFailed, "the agent in \(pid) answered in a form this stasis does not know (another Stasis build?); the program keeps running")
                }
                if result.status == .busy {
                    // The previous image of this process is still being written: ask again (the
                    // request stays; a new signal is taken as a new request once `accepted` is gone).
                    try? FileSystem.removeFile(resultPath)  // both exist: the agent wrote them
                    try? FileSystem.removeFile(acceptedPath)
                    usleep(20_000)
                    try signalling.send()
                    continue
                }
                progress?.finish()
                guard result.status == .ok else {
                    throw LauncherError(.checkpointFailed, "checkpoint of \(pid) failed: \(result.message); the program keeps running")
                }
                try finish(result, pid: pid, options: options)
                return
            }
            if hasExited(pid) {
                throw LauncherError(.noSuchProcess, "process \(pid) exited before the checkpoint completed")
            }
            // Not taken yet: the signal may have been merged with a pending one, or dropped while
            // another checkpoint ran. Sending it again is harmless: the agent takes a request once.
            if !signalling.isAccepted(acceptedPath) { try signalling.sendAgainIfDue() }
            if now() > deadline {
                throw LauncherError(.timeout, "no answer from process \(pid) within \(Int(timeout)) s; is it stopped, or blocking signal \(signal)?")
            }
            usleep(2000)
        }
    }

    /// A complete image: compacts a chain at the program's --max-chain, then prints the path (or --json).
    static func finish(_ result: CheckpointResultFile, pid: pid_t, options: OptionParser) throws(LauncherError) {
        let image = result.image
        if result.incrementalUnavailable {
            printError("stasis: warning: this kernel refused a userfaultfd (needed to track written pages); images of \(pid) stay full")
        }
        if result.processes > 1 && options.flags.contains("--incremental") {
            printError("stasis: warning: \(pid) has child processes: a process tree's checkpoint is a full one (--incremental applies to single processes)")
        }
        // A chain at the program's --max-chain: made standalone now, so that the next
        // incremental image builds on it instead of starting over with a full one.
        var compacted = false
        if result.chainLength >= 2, result.chainLength >= result.maxChain {
            let key = try readKeyFile(ifGiven: options.values["--key"])
            do {
                try CompactCommand.compact(image, key: key)
                compacted = true
            } catch {
                printError("stasis: warning: could not compact \(image): \(error.message); the next image will be a full one")
            }
        }
        guard options.flags.contains("--json") else {
            printOut(image)
            return
        }
        var fields = ["\"pid\": \(pid)", "\"image\": \"\(jsonEscape(image))\"", "\"threads\": \(result.threads)",
                      "\"processes\": \(result.processes)",
                      "\"freeze_ns\": \(result.freezeNanoseconds)", "\"pause_ns\": \(result.pauseNanoseconds)",
                      "\"total_ns\": \(result.totalNanoseconds)", "\"chain_length\": \(result.chainLength)",
                      "\"max_chain\": \(result.maxChain)"]
        if result.incrementalUnavailable { fields.append("\"incremental_unavailable\": 1") }
        fields.append("\"compacted\": \(compacted ? 1 : 0)")
        printOut("{" + fields.joined(separator: ", ") + "}")
    }

    /// The target's effective uid, trigger signal and image directory; fails unless we may checkpoint it.
    static func target(_ pid: pid_t) throws(LauncherError) -> (uid_t, Int32, String?) {
        var st = stat()
        guard stat("/proc/\(pid)", &st) == 0 else {
            throw LauncherError(.noSuchProcess, "no process \(pid); check the PID")
        }
        // The real and effective uids from /proc/PID/status (/proc/PID itself is root's when the process
        // is not dumpable). The agent runs as the effective one: the control directory is given to it.
        let uids = (try? readFile("/proc/\(pid)/status")).flatMap { status in
            String(decoding: status, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("Uid:") }
                .map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { uid_t($0) } }
        } ?? []
        let owner = uids.first ?? st.st_uid
        let effective = uids.count > 1 ? uids[1] : owner
        guard getuid() == 0 || owner == getuid() else {
            throw LauncherError(.permissionDenied, "process \(pid) belongs to uid \(owner); only its owner or root may checkpoint it")
        }
        do {
            _ = try readFile("/proc/\(pid)/maps")
        } catch where error == Errno(rawValue: EACCES) || error == Errno(rawValue: EPERM) {
            // Not even root may read a process it cannot ptrace (PID 1 in a container, a process with
            // more privileges or no dumpable flag): a permission problem, not a missing process.
            let advice = getuid() == 0 ? "it is not dumpable, or belongs to another user namespace" : "it is not dumpable or more privileged; try as root"
            throw LauncherError(.permissionDenied, "cannot read /proc/\(pid)/maps (\(error)): not allowed to inspect process \(pid); \(advice)")
        } catch {
            throw LauncherError(.noSuchProcess, "no process \(pid) (\(error)); check the PID")
        }
        // Whether the agent is loaded (and ready) is waitUntilReady's question: right after
        // `stasis run` the loader may not have mapped it yet.
        var signal = SIGUSR2
        var directory: String?
        if let environ = try? readFile("/proc/\(pid)/environ") {  // unreadable: keep the defaults
            for entry in environ.split(separator: 0) {
                let text = String(decoding: entry, as: UTF8.self)
                if text.hasPrefix("STASIS_SIGNAL="), let n = Int32(text.dropFirst(14)), (1...64).contains(n) { signal = n }
                if text.hasPrefix("STASIS_DIR=") { directory = String(text.dropFirst(11)) }
            }
        }
        return (effective, signal, directory)
    }
}

/// The trigger signal carrying a request's token, sent until the agent has taken the request.
struct RequestSignal {
    let pid: pid_t
    let signal: Int32
    let token: UInt64
    private var sentAt = 0.0
    private var resendDelay = 0.25
    private var accepted = false

    init(pid: pid_t, signal: Int32, token: UInt64) {
        self.pid = pid
        self.signal = signal
        self.token = token
    }

    mutating func send() throws(LauncherError) {
        accepted = false
        do throws(Errno) {
            try ProcessControl.queue(signal, to: pid, value: token)
        } catch where error == .noSuchProcess {
            throw LauncherError(.noSuchProcess, "process \(pid) is gone")
        } catch where error == .permissionDenied {
            throw LauncherError(.permissionDenied, "not allowed to signal process \(pid); run as its user or as root")
        } catch {
            // EAGAIN (the user's queue of signals is full): the next send tries again.
        }
        sentAt = now()
    }

    /// Has the agent taken it (created CONTROL/accepted)? Sticky until the next send.
    mutating func isAccepted(_ acceptedPath: String) -> Bool {
        if !accepted && FileSystem.isAccessible(acceptedPath, F_OK) { accepted = true }
        return accepted
    }

    /// Sends again after 0.25 s, then after ever longer waits (up to 2 s) while nobody takes it.
    mutating func sendAgainIfDue() throws(LauncherError) {
        guard now() - sentAt >= resendDelay else { return }
        resendDelay = min(resendDelay * 2, 2)
        try send()
    }
}

/// Waits (up to 5 s, for a process started less than 10 s ago) until the agent in PID has installed
/// its handler for the trigger signal (SigCgt in /proc/PID/status): a trigger sent before that would
/// kill a program that leaves the signal at its default action. An older process is checked once.
func waitUntilReady(_ pid: pid_t, signal: Int32) throws(LauncherError) {
    let deadline = now() + (processAge(pid).map { $0 < 10 } == true ? 5.0 : 0.0)
    while true {
        guard let status = try? readFile("/proc/\(pid)/status") else {
            throw LauncherError(.noSuchProcess, "process \(pid) is gone")
        }
        let text = String(decoding: status, as: UTF8.self)
        if hasExited(pid) { throw LauncherError(.noSuchProcess, "process \(pid) has exited (not yet reaped by its parent)") }
        if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
            let caught = UInt64(String(line.dropFirst(7).filter { $0 != " " && $0 != "\t" }), radix: 16),
            caught & (1 << UInt64(signal - 1)) != 0,
            let maps = try? readFile("/proc/\(pid)/maps"),
            String(decoding: maps, as: UTF8.self).contains("libStasisAgent.so")
        {
            return
        }
        if now() >= deadline {
            if let maps = try? readFile("/proc/\(pid)/maps"), String(decoding: maps, as: UTF8.self).contains("libStasisAgent.so") {
                throw LauncherError(.noSuchProcess, "the agent in process \(pid) has no handler for signal \(signal) (not started yet, or removed by a raw system call); try again, or check --signal")
            }
            throw LauncherError(.noSuchProcess, "process \(pid) is not running under stasis (start it with `stasis run`)")
        }
        usleep(5_000)
    }
}

/// Writes `bytes` to PATH.tmp (0600, given to `owner` when root writes for another user) and renames it.
func writeAtomically(_ path: String, _ bytes: [UInt8], owner: uid_t) throws(LauncherError) {
    let temp = path + ".tmp"
    do throws(Errno) {
        let fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
        do throws(Errno) {
            if getuid() == 0 && owner != 0 { try fd.changeOwner(to: owner) }
        } catch {
            fd.closeAfterError()
            throw error
        }
        try fd.writeAllAndClose(bytes)
        try FileSystem.rename(temp, to: path)
    } catch {
        throw LauncherError(.failure, "cannot write \(path): \(error)")
    }
}

/// Progress on a terminal while a large image is written: the size of the agent's temporary file
/// (DIR/.NAME-PID.tmp), every half second, on one stderr line.
final class Progress {
    let path: String?
    var lastShown = 0.0
    var shown = false
    let started = now()

    init(pid: pid_t, directory: String?) {
        let comm = ((try? readFile("/proc/\(pid)/comm")) ?? []).prefix { $0 != 10 }
        let name = String(decoding: comm.map { c in
            (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95 || c == 46 ? c : 95
        }, as: UTF8.self)
        path = directory.map { "\($0)/.\(name.isEmpty ? "process" : name)-\(pid).tmp" }
    }

    func update() {
        guard let path, now() - lastShown >= 0.5 else { return }
        lastShown = now()
        var st = stat()
        guard stat(path, &st) == 0, st.st_size > 0 else { return }
        let mib = Double(st.st_size) / 1_048_576
        let rate = mib / max(now() - started, 0.001)
        let text = "\rstasis: checkpoint: \(Int(mib)) MiB written (\(Int(rate)) MiB/s)   "
        _ = text.withCString { write(2, $0, strlen($0)) }
        shown = true
    }

    func finish() {
        if shown { _ = "\n".withCString { write(2, $0, 1) } }
        shown = false
    }
}
