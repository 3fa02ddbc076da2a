import CStasisSpawn
import Glibc
import StasisSystem

/// A restore's own PID namespace (stasis_namespace_spawn.h; Docs/ARCHITECTURE.md 3.7): when the host
/// cannot give the program its original PIDs (they are taken, or choosing them needs privilege), an
/// init of ours is PID 1 of a new namespace and the program gets them there. Restart waits for the init,
/// which reports the program's end; signals go to the program itself, by its PID on the host.
struct NamespaceInit {
    /// The init's PID on the host (restart's child).
    let pid: pid_t
    /// The program's (a tree root's) PID inside; 1 when the program is the init itself.
    let programInside: pid_t
    /// The program's PID on the host (what signals and --pid-file name).
    let programHostPID: pid_t
    /// The init's report pipe, read end: ENDED comes here.
    let report: FileDescriptor
    /// A user namespace too (an ordinary user): the restorer drops its capabilities.
    let newUser: Bool

    var programIsInit: Bool { programInside == 1 }

    /// Why no namespace could be had, for the one line that says how the program came back instead.
    struct Refusal: Error {
        let reason: String
    }

    /// A user namespace is needed (to own the PID namespace) unless this process has CAP_SYS_ADMIN.
    static var needsUserNamespace: Bool { !hasEffectiveCapability(21 /* CAP_SYS_ADMIN */) }

    /// Clones the init through `spawn` (stasis_spawn_in_namespace or its tree form, given the settings)
    /// and reads its first report: started, or the step that failed. A failed init is reaped.
    /// `lastPID`: the highest PID or TID the program(s) will ask for (stasis_namespace_t.last_pid).
    static func start(lastPID: pid_t = 0, _ spawn: (stasis_namespace_t) -> Int32) -> Result<NamespaceInit, Refusal> {
        let pipe: (read: FileDescriptor, write: FileDescriptor)
        let release: (read: FileDescriptor, write: FileDescriptor)
        do {
            pipe = try FileDescriptor.pipe()
            release = try FileDescriptor.pipe()
        } catch {
            return .failure(Refusal(reason: "cannot create a pipe: \(error)"))
        }
        defer { release.write.closeAfterError() }  // end of file: a restorer still waiting there gives up
        let newUser = needsUserNamespace
        let settings = stasis_namespace_t(new_user: newUser ? 1 : 0, uid: geteuid(), gid: getegid(), report_fd: pipe.write.rawValue,
                                          release_fd: release.read.rawValue, last_pid: lastPID)
        let pid = spawn(settings)
        pipe.write.closeAfterError()  // ours must go for end of file to come when the init ends
        release.read.closeAfterError()
        guard pid > 0 else {
            pipe.read.closeAfterError()
            let error = Errno(rawValue: -pid)
            let reason = newUser && (error.rawValue == EPERM || error.rawValue == ENOSPC || error.rawValue == EUSERS)
                ? "this system refuses user namespaces (\(error)); see /proc/sys/user/max_user_namespaces"
                : "cannot create a PID namespace (\(error))"
            return .failure(Refusal(reason: reason))
        }
        let first = readReport(pipe.read)
        guard let first, first.kind == Int32(STASIS_NAMESPACE_STARTED) else {
            _ = try? ProcessControl.wait(pid)  // it exits after a failure; ECHILD: reaped already
            pipe.read.closeAfterError()
            return .failure(Refusal(reason: first.map(describeFailure) ?? "the namespace's init ended without a report"))
        }
        let inside = first.value == 0 ? 1 : first.value
        // The program is alive (a single process's restorer waits for the release; a tree's root for its go).
        guard let host = inside == 1 ? pid : hostPIDs(under: pid)[inside] else {
            try? ProcessControl.send(SIGKILL, to: pid)  // the init's end ends every process inside
            _ = try? ProcessControl.wait(pid)
            pipe.read.closeAfterError()
            return .failure(Refusal(reason: "cannot find the restored program's PID on the host"))
        }
        if inside != 1 { Self.release(release.write) }
        return .success(NamespaceInit(pid: pid, programInside: inside, programHostPID: host, report: pipe.read, newUser: newUser))
    }

    /// Every process of the namespace (the init's descendants) by its PID inside, with its PID on the
    /// host: the innermost and outermost numbers of /proc/PID/status's NSpid.
    func hostPIDs() -> [pid_t: pid_t] { Self.hostPIDs(under: pid) }

    static func hostPIDs(under initPID: pid_t) -> [pid_t: pid_t] {
        var result: [pid_t: pid_t] = [:]
        var queue = [initPID]
        while let host = queue.popLast() {
            if let inside = innermostPID(of: host) { result[inside] = host }
            queue += childrenOf(host)
        }
        return result
    }

    /// The program's wait status, once the init has ended with `initStatus`: its report, or, without one
    /// (the init was killed), the init's own status.
    func programStatus(initStatus: Int32) -> Int32 {
        if programIsInit { return initStatus }
        while let report = Self.readReport(report) {
            if report.kind == Int32(STASIS_NAMESPACE_ENDED) { return report.value }
        }
        return initStatus
    }

    // ---- /proc and the pipes ------------------------------------------------------------------------

    /// One byte lets the restorer go on to its exec. A restorer that died meanwhile closed its end: the
    /// write fails (EPIPE; its status pipe says why) and must not kill restart with SIGPIPE, which is
    /// ignored only around this write (a program exec'd later must not inherit SIG_IGN).
    static func release(_ pipe: FileDescriptor) {
        let previous = signal(SIGPIPE, SIG_IGN)
        _ = try? pipe.writeAll([1])
        signal(SIGPIPE, previous)
    }

    static func readReport(_ pipe: FileDescriptor) -> stasis_namespace_report_t? {
        var report = stasis_namespace_report_t()
        let size = MemoryLayout<stasis_namespace_report_t>.size
        var got = 0
        while got < size {
            let n = withUnsafeMutableBytes(of: &report) { raw in
                (try? pipe.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[got...]))) ?? 0  // EINTR is retried inside
            }
            if n <= 0 { return nil }
            got += n
        }
        return report
    }

    static func describeFailure(_ report: stasis_namespace_report_t) -> String {
        let error = Errno(rawValue: report.error)
        switch report.step {
        case Int32(STASIS_NAMESPACE_STEP_SETGROUPS), Int32(STASIS_NAMESPACE_STEP_UID_MAP), Int32(STASIS_NAMESPACE_STEP_GID_MAP):
            return "cannot map the user's ids in a user namespace (\(error))"
        case Int32(STASIS_NAMESPACE_STEP_PRIVATE_MOUNTS), Int32(STASIS_NAMESPACE_STEP_MOUNT_PROC):
            return "cannot mount a /proc for the PID namespace (\(error))"
        case Int32(STASIS_NAMESPACE_STEP_CLONE):
            return "cannot create the program with its PID in the namespace (\(error))"
        default:
            return "the namespace's init failed at step \(report.step) (\(error))"
        }
    }

    static func innermostPID(of pid: pid_t) -> pid_t? {
        guard let status = try? readFile("/proc/\(pid)/status") else { return nil }
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("NSpid:") {
            return line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { pid_t($0) }
        }
        return nil
    }
}

/// Whether capability `number` is in this process's effective set (CapEff of /proc/self/status).
func hasEffectiveCapability(_ number: Int) -> Bool {
    guard let status = try? readFile("/proc/self/status") else { return geteuid() == 0 }  // no /proc: guess
    for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("CapEff:") {
        let mask = UInt64(String(line.dropFirst(7).filter(\.isHexDigit)), radix: 16) ?? 0
        return mask & (1 << UInt64(number)) != 0
    }
    return geteuid() == 0
}
