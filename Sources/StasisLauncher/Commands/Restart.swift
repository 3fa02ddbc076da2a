import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// `stasis restart IMAGE`: validate everything, reopen the descriptors, start the restorer as a child
/// (with the original PID when permitted and free), forward signals, and exit as the program does.
enum RestartCommand {
    static let help = """
        usage: stasis restart [--pid-file F] [--allow-changed-files] [--key FILE] [--interval D [--dir DIR]] [--eager]
                              [--fd N=PATH | --fd N=inherit]... IMAGE

        Brings the checkpointed program back where it was, in the foreground; the exit status is the
        program's. The original PID is reused when it is free and the caller may choose PIDs (root or
        CAP_CHECKPOINT_RESTORE); otherwise a new PID is used and stderr says so.
          --pid-file F             write the restored program's PID to F
          --key FILE               refuse the image unless its HMAC-SHA256 signature matches FILE's key;
                                   the restored program keeps signing its images with it
          --interval D             checkpoint the restored program every D (90s, 15m, 2h), into --dir or the
                                   program's own image directory
          --eager                  read every page in before the program runs again. By default large
                                   areas come back lazily: the program runs at once and a pager process
                                   brings pages in as it touches them and the rest in the background
                                   (it keeps the image open until then, so deleting the image is safe;
                                   use --eager for images on a network file system that may vanish, or
                                   to have all memory in place before anything runs). Lazy restart
                                   needs root or CAP_SYS_PTRACE (or vm.unprivileged_userfaultfd=1);
                                   otherwise restart is eager and says so
          --allow-changed-files    go on when a file the program had open or mapped changed since the
                                   checkpoint (a warning per file); by default that refuses the restart
          --fd N=PATH              the program's fd N is PATH instead of what it was (a log file that has
                                   been moved or rotated): opened in the mode the program had (append stays
                                   append; created if missing when the program wrote to it; never
                                   truncated), at the saved offset if PATH is that long, else at its end.
                                   An fd that shared its open file with N (2>&1) gets PATH too
          --fd N=inherit           the program's fd N is this process's own fd N (`3>>new.log`, a pipe)
        --fd may be given once per N; N must be an fd the program had.
        Signals sent to this process are forwarded to the program.
        """

    static let forwarded: [Int32] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT,
                                     SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGPWR, SIGVTALRM, SIGPROF, SIGXCPU]

    static func main(_ arguments: [String]) throws(LauncherError) -> Int32 {
        let options = try OptionParser(arguments, valued: ["--pid-file", "--key", "--interval", "--dir", "--fd"], flags: ["--help", "--allow-changed-files", "--eager"], command: "restart")
        if options.flags.contains("--help") {
            printOut(help)
            return 0
        }
        guard options.positional.count == 1 else {
            throw LauncherError(.usage, "restart needs one IMAGE; usage: stasis restart [--pid-file F] IMAGE")
        }
        let overrides = try DescriptorOverride.parse(options.allValues["--fd"] ?? [])  // before restart opens fds of its own
        let source = try FileImageSource(path: options.positional[0])
        let image = try source.decode()
        try checkOwnership(image, source)
        // An incremental image: its parents, checked like it, and where each inherited page is.
        let chain = try ImageChain.load(image, source: source) { parent, parentSource throws(LauncherError) in
            try checkOwnership(parent, parentSource)
            if let keyPath = options.values["--key"] {
                do {
                    try parent.verifySignature(from: parentSource, key: try readKey(keyPath))
                } catch let error as LauncherError {
                    throw error
                } catch {
                    throw LauncherError(.signatureMismatch, "\(parentSource.path): \(error)")
                }
            }
        }
        try MachineCheck.check(image)
        try FileCheck.check(image, allowChanged: options.flags.contains("--allow-changed-files"),
                            replaced: try DescriptorOverride.replaced(overrides, in: image))
        var keyPipe: (read: FileDescriptor, write: FileDescriptor)? = nil
        if let keyPath = options.values["--key"] {
            let key = try readKey(keyPath)
            do {
                try image.verifySignature(from: source, key: key)
            } catch {
                throw LauncherError(.signatureMismatch, "\(source.path): \(error)")
            }
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw LauncherError(.failure, "cannot create a pipe: \(Errno.current)") }
            let pair = (read: FileDescriptor(rawValue: ends[0]), write: FileDescriptor(rawValue: ends[1]))
            _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
            do {
                try pair.write.writeAll(key)  // at most 4000 bytes: fits the pipe
            } catch {
                throw LauncherError(.failure, "cannot pass the key to the restorer: \(error)")
            }
            pair.write.closeAfterError()
            keyPipe = pair
        }
        let planFile = chain.isIncremental ? try restorePlan(chain) : nil
        let restorer = Installation.restorer
        guard access(restorer, X_OK) == 0 else {
            throw LauncherError(.failure, "restorer not found at \(restorer); build with `swift build` first")
        }

        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0, fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC) == 0 else { throw LauncherError(.failure, "cannot create a pipe: \(Errno.current)") }
        let statusRead = FileDescriptor(rawValue: pipeFDs[0])
        let statusWrite = FileDescriptor(rawValue: pipeFDs[1])
        var extra: [FileDescriptor] = []
        if let planFile { extra = [planFile] + chain.members.dropFirst().map(\.source.descriptor) }
        let plan = try FileDescriptorPlan(image: image, imageFD: source.descriptor, statusFD: statusWrite,
                                          keyFD: keyPipe?.read, imageSource: source, extraDescriptors: extra,
                                          overrides: overrides)
        keyPipe?.read.closeAfterError()
        if let planFile {
            // The restorer knows the parents by the numbers it will have for them.
            try writePlanTargets(planFile, Array(plan.extraTargets.dropFirst()))
        }

        // Block the forwarded signals and SIGCHLD before the child exists: sigwaitinfo collects them,
        // and the child starts with them blocked until its sigreturn installs the program's mask.
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in forwarded + [SIGCHLD] { sigaddset(&blocked, signal) }
        sigprocmask(SIG_BLOCK, &blocked, nil)

        var argv: [UnsafeMutablePointer<CChar>?] = [strdup(restorer), strdup(String(plan.imageTarget)),
                                                     strdup(String(plan.statusTarget))]
        argv.append(strdup(String(plan.keyTarget)))
        argv.append(strdup(String(plan.extraTargets.first ?? -1)))
        argv.append(strdup(options.flags.contains("--eager") ? "0" : "1"))
        // Diagnostics and tests: the pager serves only faults for this long before paging in the rest.
        if let delay = getenv("STASIS_PAGER_DELAY_MS").flatMap({ Int(String(cString: $0)) }), delay > 0, delay <= 600_000 {
            argv.append(strdup(String(delay)))
        }
        argv.append(nil)
        var usedSetTID: Int32 = 0
        var setTIDError: Int32 = 0
        let pid: Int32 = restorer.withCString { path in
            image.process.cwd.withCString { cwd in
                plan.moves.withUnsafeBufferPointer { moves in
                    plan.epollAdds.withUnsafeBufferPointer { epollAdds in
                        argv.withUnsafeBufferPointer { args in
                            var spawn = stasis_spawn_plan_t(
                                path: path, argv: args.baseAddress!, moves: moves.baseAddress, move_count: Int32(moves.count),
                                keep_stdio: plan.keepStdio, cwd: cwd, umask: image.process.umask,
                                wanted_pid: image.header.pid, epoll_adds: epollAdds.baseAddress,
                                epoll_add_count: Int32(epollAdds.count))
                            return stasis_spawn(&spawn, &usedSetTID, &setTIDError)
                        }
                    }
                }
            }
        }
        plan.closeAll()
        planFile?.closeAfterError()
        withExtendedLifetime(chain) {}  // the parents' descriptors stay open until the child has its copies
        statusWrite.closeAfterError()
        guard pid > 0 else {
            statusRead.closeAfterError()
            throw LauncherError(.restoreFailed, "cannot start the restorer: \(Errno(rawValue: -pid))")
        }
        if usedSetTID == 0 {
            let why = setTIDError == EEXIST ? "PID \(image.header.pid) is in use"
                : setTIDError == EPERM ? "choosing PIDs needs root or CAP_CHECKPOINT_RESTORE"
                : "clone3 set_tid failed (\(Errno(rawValue: setTIDError)))"
            printError("stasis: \(why); restored as PID \(pid) (thread ids are patched)")
        }

        // The restorer answers "ok" just before it jumps into the program, or "error ..." and exits.
        // Up to "ok", or EOF when the restorer failed (or died silently). A lazy restart's pager keeps the
        // pipe: it reports a page checksum mismatch there later (see forwardSignals).
        let status = readStatus(statusRead)
        let lines = String(decoding: status, as: UTF8.self).split(separator: "\n")
        for line in lines where line.hasPrefix("warning ") { printError("stasis: restore warning: \(line.dropFirst(8))") }
        guard lines.contains("ok") else {
            var waitStatus: Int32 = 0
            _ = waitpid(pid, &waitStatus, 0)
            // "corrupt ...": the restorer found the image damaged (a page checksum): exit 3, as a damaged
            // image found by our own checks or `stasis verify` does, so that a script can fall back.
            if let corrupt = lines.first(where: { $0.hasPrefix("corrupt ") }) {
                throw LauncherError(.badImage, "\(options.positional[0]) is damaged: \(corrupt.dropFirst(8)); "
                    + "restart an older image (`stasis verify` checks one)")
            }
            let error = lines.first(where: { $0.hasPrefix("error ") }).map { String($0.dropFirst(6)) }
                ?? "the restorer exited without a report (status \(waitStatus))"
            throw LauncherError(.restoreFailed, "restore of \(options.positional[0]) failed: \(error)")
        }
        if let pidFile = options.values["--pid-file"] { try writePIDFile(pidFile, pid) }
        var interval: Double? = nil
        if let text = options.values["--interval"] {
            guard let seconds = WatchCommand.parseDuration(text), seconds >= 1 else {
                throw LauncherError(.usage, "--interval needs a duration of at least 1s, like 90s, 15m or 2h")
            }
            interval = seconds
        }
        var checkpointArguments: [String] = []
        if let dir = options.values["--dir"] { checkpointArguments += ["--dir", dir] }
        if let key = options.values["--key"] { checkpointArguments += ["--key", key] }
        return forwardSignals(to: pid, blocked: blocked, interval: interval, checkpointArguments: checkpointArguments,
                              laterStatus: statusRead)
    }

    /// The restore plan for an incremental image (stasis_restore_plan.h), in a memfd: the parents'
    /// page data that is used is checked against its CRCs first (the restorer checks the newest
    /// image's own as it reads it).
    static func restorePlan(_ chain: ImageChain) throws(LauncherError) -> FileDescriptor {
        let segments = try chain.pageSegments()
        // The parents' page data is checked by the restorer (or a lazy restart's pager), not here:
        // reading a 2 GiB parent first would make every restart of a chain as slow as an eager one.
        let checks = chain.contributingAreas(segments).map { member, area in
            stasis_plan_check_t(file_offset: area.dataOffset, bytes: area.dataBytes, image: UInt32(member - 1), crc: area.dataCRC)
        }
        let fd = stasis_make_memfd("stasis-restore-plan")
        guard fd >= 0 else { throw LauncherError(.failure, "cannot create the restore plan: \(Errno(rawValue: -fd))") }
        let file = FileDescriptor(rawValue: fd)
        var header = stasis_restore_plan_header_t()
        header.magic = STASIS_PLAN_MAGIC
        header.segment_count = UInt32(segments.count)
        header.image_count = UInt32(chain.members.count - 1)
        header.check_count = UInt32(checks.count)
        let segmentBytes = segments.count * MemoryLayout<stasis_page_segment_t>.size
        var bytes = [UInt8](repeating: 0, count: MemoryLayout<stasis_restore_plan_header_t>.size + segmentBytes
            + checks.count * MemoryLayout<stasis_plan_check_t>.size)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: header, as: stasis_restore_plan_header_t.self)
            let start = raw.baseAddress!.advanced(by: MemoryLayout<stasis_restore_plan_header_t>.size)
            segments.withUnsafeBytes { if let base = $0.baseAddress { start.copyMemory(from: base, byteCount: $0.count) } }
            checks.withUnsafeBytes { if let base = $0.baseAddress { start.advanced(by: segmentBytes).copyMemory(from: base, byteCount: $0.count) } }
        }
        do {
            try file.writeAll(bytes)
        } catch {
            file.closeAfterError()
            throw LauncherError(.failure, "cannot write the restore plan: \(error)")
        }
        return file
    }

    /// The page CRC of every parent area that `segments` take pages from.
    static func verifyParentData(_ chain: ImageChain, _ segments: [stasis_page_segment_t]) throws(LauncherError) {
        for (member, area) in chain.contributingAreas(segments) {
            let source = chain.members[member].source
            do {
                try Image.checkData(at: area.dataOffset, bytes: area.dataBytes, crc: area.dataCRC,
                                    what: "the page data of area 0x\(String(area.start, radix: 16))-0x\(String(area.end, radix: 16))", from: source)
            } catch {
                throw LauncherError(.badImage, "\(source.path): \(error)")
            }
        }
    }

    /// Fills in the plan's image_fds once the restorer's numbers for the parents are known.
    static func writePlanTargets(_ file: FileDescriptor, _ targets: [Int32]) throws(LauncherError) {
        let offset = MemoryLayout<stasis_restore_plan_header_t>.offset(of: \.image_fds)!
        let n = targets.withUnsafeBytes { raw in raw.isEmpty ? 0 : pwrite(file.rawValue, raw.baseAddress!, raw.count, off_t(offset)) }
        guard n == targets.count * 4 else { throw LauncherError(.failure, "cannot write the restore plan: \(Errno.current)") }
    }

    /// The restorer's status lines up to and including "ok", or to EOF.
    static func readStatus(_ pipe: FileDescriptor) -> [UInt8] {
        var result: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(pipe.rawValue, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return result }
            result.append(byte)
            if byte == 10 && (result.count == 3 || (result.count > 3 && result[result.count - 4] == 10))
                && result[result.count - 3] == UInt8(ascii: "o") && result[result.count - 2] == UInt8(ascii: "k") {
                return result
            }
        }
    }

    /// A key file's bytes (at most 4000), for HMAC-SHA256 signatures.
    static func readKey(_ path: String) throws(LauncherError) -> [UInt8] {
        let key: [UInt8]
        do {
            key = try readFile(path)
        } catch {
            throw LauncherError(.usage, "cannot read key file \(path): \(error)")
        }
        guard !key.isEmpty, key.count <= 4000 else {
            throw LauncherError(.usage, "key file \(path) must hold 1 to 4000 bytes")
        }
        return key
    }

    /// Restart never raises privileges: an image must be the caller's (file and process), unless root.
    static func checkOwnership(_ image: Image, _ source: FileImageSource) throws(LauncherError) {
        let caller = getuid()
        guard caller != 0 else { return }
        let owner = (try? source.descriptor.status().st_uid) ?? caller  // fstat of an open fd does not fail here
        guard owner == caller else {
            throw LauncherError(.permissionDenied, "\(source.path) belongs to uid \(owner); only its owner or root may restart it")
        }
        let p = image.process
        guard p.effectiveCapabilities == 0 else {
            throw LauncherError(.permissionDenied,
                                "the image is of a process with capabilities (0x\(String(p.effectiveCapabilities, radix: 16))); only root may restart it")
        }
        guard p.uid == caller, p.euid == caller else {
            throw LauncherError(.permissionDenied,
                                "the image is of a process with uid \(p.uid)/euid \(p.euid); restarting it as uid \(caller) is refused")
        }
    }

    /// Waits for the program, passing on signals sent to us; returns its exit status, or re-raises its
    /// fatal signal so that our parent sees the same.
    /// With `interval`, also runs `stasis checkpoint PID` every `interval` seconds (as a child of this
    /// launcher, not of the program), passing `checkpointArguments`.
    static func forwardSignals(to pid: pid_t, blocked: sigset_t, interval: Double? = nil,
                               checkpointArguments: [String] = [], laterStatus: FileDescriptor? = nil) -> Int32 {
        var set = blocked
        var helpers: [pid_t] = []
        var nextCheckpoint = interval.map { now() + $0 }
        while true {
            var waitStatus: Int32 = 0
            helpers.removeAll { helper in waitpid(helper, &waitStatus, WNOHANG) == helper }
            if let due = nextCheckpoint, let interval, now() >= due {
                if helpers.isEmpty, let helper = try? WatchCommand.spawnSelf(["checkpoint"] + checkpointArguments + [String(pid)],
                                                                            newSession: false) {
                    helpers.append(helper)  // nil: could not spawn; the next interval tries again
                }
                nextCheckpoint = now() + interval
            }
            let done = waitpid(pid, &waitStatus, WNOHANG)
            if done == pid {
                var pagerVerdict: Int32? = nil
                if let laterStatus {
                    // What a lazy restart's pager said: it stops the program (SIGKILL) on a page checksum
                    // mismatch ("corrupt ...") or when it cannot go on ("error ..."), writing its line
                    // first. What is there now (the pager may still hold the pipe: no end of file to wait for).
                    _ = fcntl(laterStatus.rawValue, F_SETFL, O_NONBLOCK)
                    let bytes = laterStatus.readAvailable()
                    let text = String(decoding: bytes, as: UTF8.self)
                    for line in text.split(separator: "\n") {
                        if line.hasPrefix("corrupt ") {
                            printError("stasis: \(line.dropFirst(8))")
                            pagerVerdict = ExitCode.badImage.rawValue
                        } else if line.hasPrefix("error ") {
                            printError("stasis: \(line.dropFirst(6))")
                            pagerVerdict = pagerVerdict ?? ExitCode.restoreFailed.rawValue
                        }
                    }
                    laterStatus.closeAfterError()
                }
                if waitStatus & 0x7f == 0 { return (waitStatus >> 8) & 0xff }  // exited
                let signal = waitStatus & 0x7f
                // The pager stopped it: our exit code says why (3 damaged image, 9 restore failed), not
                // a SIGKILL that would look like the program's own crash.
                if signal == SIGKILL, let pagerVerdict { return pagerVerdict }
                sigprocmask(SIG_UNBLOCK, &set, nil)
                Glibc.signal(signal, SIG_DFL)
                raise(signal)
                return 128 + signal
            }
            var info = siginfo_t()
            var timeout = timespec(tv_sec: 1, tv_nsec: 0)
            let signal = interval == nil ? sigwaitinfo(&set, &info) : sigtimedwait(&set, &info, &timeout)
            if signal <= 0 || signal == SIGCHLD { continue }
            // Keyboard signals already reached the whole foreground process group.
            if info.si_code == SI_KERNEL && [SIGINT, SIGQUIT, SIGTSTP].contains(signal) { continue }
            kill(pid, signal)
        }
    }
}
