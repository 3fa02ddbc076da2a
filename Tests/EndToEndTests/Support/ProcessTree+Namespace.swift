import Glibc
import Testing

/// A ProcessTree restored in a PID namespace of its own (issue 14): `stasis restart` → the namespace's init
/// (PID 1 inside; restart's child) → the root (its original PID inside) → the rest of the tree.
///
/// Algorithm:
///   restored  --pid-file names the root's host PID H; its NSpid ("H ... ROOT") must end in the root's
///             original PID; the init is the one child of `stasis restart` whose NSpid ends in 1, and H's
///             parent; every process under the init, by the last number of its NSpid, is a member (the
///             READY ones and no other), with the ppid, pgid and sid it had (the host's numbers in
///             /proc/PID/stat translated back through NSpid); restart's output says once that the tree was
///             restored in a namespace, naming the root's PID on the host
///   kill      SIGKILL to the init ends every process inside (the kernel's doing); `stasis restart` then
///             ends as its program did, of SIGKILL; every host PID of the namespace is gone at once
extension ProcessTree {
    /// A member's host PID: `pid` itself on the host, else through the namespace's NSpid map (nil: no such
    /// member inside).
    func hostPID(_ pid: pid_t) -> pid_t? {
        namespaceInit == nil ? pid : hostPIDs[pid]
    }

    /// The last `stasis restart`'s output (its stderr: what it said about the namespace).
    func restartLog() -> String {
        (try? String(contentsOfFile: scratch.file("restart-\(label)\(restarts).log"))) ?? ""
    }

    /// A member's ppid, pgid and sid as the tree sees them: inside the namespace, translated from the host's.
    func idsInside(_ pid: pid_t) -> ProcessIDs? {
        guard let host = hostPID(pid), let ids = ProcessIDs(host) else { return nil }
        guard let initPID = namespaceInit else { return ids }
        var inside = [initPID: pid_t(1)]
        for (pid, host) in hostPIDs { inside[host] = pid }
        return ids.translated(inside)
    }

    /// The restart's checks when the tree must come back in a PID namespace (see the algorithm above).
    func awaitRestoredInNamespace(_ launcher: ChildProcess, pidFile: String, log: String) throws {
        func logText() -> String { (try? String(contentsOfFile: log)) ?? "" }
        let what = "restart \(label)\(restarts)"
        let restored = try waitForPIDFile(pidFile, of: launcher, log: log, what)
        guard let restored, restored > 0 else { throw TestFailure("\(what) ended without restoring: \(logText())") }
        let rootNS = namespacePIDs(restored)
        guard rootNS.count >= 2, rootNS.first == restored, rootNS.last == root else {
            throw TestFailure("\(what): --pid-file's \(restored) has NSpid \(rootNS), not \(restored) … \(root): \(logText())")
        }
        let inits = children(of: launcher.pid).filter { namespacePIDs($0).count >= 2 && namespacePIDs($0).last == 1 }
        guard inits.count == 1, let initPID = inits.first else {
            throw TestFailure("\(what): `stasis restart` has \(inits.count) children at PID 1 of a namespace: \(logText())")
        }
        #expect(procStat(restored).map { $0[1] == Substring(String(initPID)) } == true, "\(what): the root is the init's child")
        namespaceInit = initPID
        rootHost = restored
        remember([initPID])
        do {
            try waitUntil("every READY descendant inside", seconds: 30) {
                hostPIDs = Self.namespaceMembers(initPID)
                return ([root] + descendants).allSatisfy { hostPIDs[$0] != nil }
            }
        } catch {
            throw TestFailure("\(what): inside are \(hostPIDs.keys.sorted()), not \(([root] + descendants).sorted()): \(logText())")
        }
        remember(Array(hostPIDs.values))
        #expect(Set(hostPIDs.keys) == Set([root] + descendants), "\(what): the namespace holds the tree alone: \(hostPIDs)")
        for (pid, host) in hostPIDs.sorted(by: { $0.key < $1.key }) {
            #expect(namespacePIDs(host) == [host, pid], "\(what): NSpid of host PID \(host) (\(pid) inside)")
        }
        for (pid, before) in ids.sorted(by: { $0.key < $1.key }) {
            let now = idsInside(pid)
            #expect(now?.sameAs(before, ppid: pid != root) == true,
                    "\(what): PID \(pid) had \(before), now (inside) \(String(describing: now))")
        }
        let said = logText().split(separator: "\n").filter { $0.contains("restored in a new PID namespace") }
        #expect(said.count == 1 && said[0].hasPrefix("stasis: ")
                && said[0].hasSuffix("with the original PIDs (process \(root) is PID \(restored) on the host)"),
                "\(what): one line on the namespace: \(logText())")
    }

    /// The namespace's SIGKILL: its init; returns once `stasis restart` has ended and the PIDs are gone.
    func killNamespace() throws {
        guard let initPID = namespaceInit, let start = started[initPID], startTime(initPID) == start else {
            throw TestFailure("the namespace's init is gone already")
        }
        let killed = [initPID] + Array(hostPIDs.values)
        kill(initPID, SIGKILL)
        let end = try parent.wait(seconds: 60)
        #expect(end == .signaled(SIGKILL), "`stasis restart` ends as its init did")
        try waitUntil("every process of the namespace gone from /proc", seconds: 60) {
            killed.allSatisfy { access("/proc/\($0)", F_OK) != 0 }
        }
        namespaceInit = nil
        hostPIDs = [:]
        rootHost = -1
    }

    /// Every process under `initPID` (recursively): its host PID by its PID inside (NSpid's last number).
    static func namespaceMembers(_ initPID: pid_t) -> [pid_t: pid_t] {
        var result: [pid_t: pid_t] = [:]
        var queue = children(of: initPID)
        while let host = queue.popLast() {
            guard let inside = namespacePIDs(host).last else { continue }  // ended meanwhile
            result[inside] = host
            queue += children(of: host)
        }
        return result
    }
}

extension ProcessIDs {
    /// The same ids in other numbers (host → inside); nil when one has none there (a group or session
    /// outside the namespace, which shows as 0 inside).
    func translated(_ map: [pid_t: pid_t]) -> ProcessIDs? {
        guard let ppid = map[ppid], let pgid = map[pgid], let sid = map[sid] else { return nil }
        var copy = self
        (copy.ppid, copy.pgid, copy.sid) = (ppid, pgid, sid)
        return copy
    }
}

/// /proc/PID/status's NSpid: the PID in this namespace first, the innermost last; [] when gone.
func namespacePIDs(_ pid: pid_t) -> [pid_t] {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status") else { return [] }
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }) else { return [] }
    return line.dropFirst(6).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { pid_t($0) }
}

/// "pid:[4026531836]": the namespace of `kind` ("pid", "user"...) that `pid` is in; nil when gone.
func namespaceOf(_ pid: pid_t, _ kind: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 256)
    let n = readlink("/proc/\(pid)/ns/\(kind)", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
