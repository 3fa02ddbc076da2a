import Glibc
import StasisSystem

/// `stasis restart` after "ok": the program's parent. Waits for it, passes on signals sent to us,
/// runs `stasis checkpoint PID` every --interval (as our child, not the program's), and ends as the
/// program did: its exit status, or its fatal signal re-raised so that our parent sees the same.
struct SignalForwarder {
    /// Passed on to the program (Docs/ARCHITECTURE.md 3.5).
    static let forwarded: [Int32] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT,
                                     SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGPWR, SIGVTALRM, SIGPROF, SIGXCPU]

    let program: pid_t
    let blocked: SignalSet
    var interval: Double?
    var checkpointArguments: [String] = []
    /// The status pipes (one per process of a tree), where a lazy restart's pager may still report.
    var laterStatus: [FileDescriptor] = []
    /// A tree: other children come and go (lazy pagers that were orphaned while the tree was made,
    /// when this process was a subreaper); they are reaped, never waited for.
    var reapsOtherChildren = false
    /// A tree whose root leads its own group, run from a terminal: that group is the terminal's
    /// foreground group while the program runs, and `ownGroup` gets it back at the end, and whenever the
    /// program stops (Ctrl-Z): then this process stops too, as a shell's job would, and gives the
    /// terminal back to the program's group when it is continued.
    var terminal: (fd: Int32, programGroup: pid_t, ownGroup: pid_t)?
    /// Restored in a PID namespace of its own: restart's child is the namespace's init, which reports the
    /// program's end (the program is not our child).
    var namespace: NamespaceInit?

    /// Blocks the forwarded signals and SIGCHLD (before the restorer exists, so that it inherits the
    /// mask); returns the set to wait on.
    static func blockForwardedSignals() -> SignalSet {
        let set = SignalSet(forwarded + [SIGCHLD])
        set.block()
        return set
    }

    /// How `stasis restart` ends.
    enum Ending: Equatable {
        case exit(Int32)
        case dieOf(Int32)
    }

    /// Runs until the program ends; returns the exit status (after re-raising a fatal signal).
    func run() -> Int32 {
        var helpers: [pid_t] = []
        var nextCheckpoint = interval.map { now() + $0 }
        while true {
            // Only a reaped helper goes; one still running (nil) or not waitable (an error) stays, as before.
            helpers.removeAll { helper in ((try? ProcessControl.wait(helper, noHang: true)) ?? nil) != nil }
            if let due = nextCheckpoint, let interval, now() >= due {
                if helpers.isEmpty, let helper = try? spawnSelf(["checkpoint"] + checkpointArguments + [String(program)], newSession: false) {
                    helpers.append(helper)  // nil: could not spawn; the next interval tries again
                }
                nextCheckpoint = now() + interval
            }
            let child = namespace?.pid ?? program
            if reapsOtherChildren { while ProcessControl.reapOther(than: Set([child] + helpers)) != nil {} }
            if var waitStatus = (try? ProcessControl.wait(child, noHang: true, stopped: terminal != nil && namespace == nil)) ?? nil {
                if ProcessControl.isStopped(waitStatus) {
                    stopWithProgram()
                    continue
                }
                giveTerminalBack()
                if let namespace { waitStatus = namespace.programStatus(initStatus: waitStatus) }
                switch Self.ending(waitStatus: waitStatus, pagerVerdict: pagerVerdict()) {
                case .exit(let code): return code
                case .dieOf(let signal):
                    ProcessControl.dieOfSignal(signal)
                    return 128 + signal
                }
            }
            // A 1 s limit with --interval, to check the clock; EINTR is retried inside.
            guard let (signal, info) = (try? blocked.wait(timeout: interval == nil ? nil : 1)) ?? nil,
                signal != SIGCHLD
            else { continue }
            // Keyboard signals already reached the whole foreground process group.
            if info.si_code == SI_KERNEL && [SIGINT, SIGQUIT, SIGTSTP].contains(signal) { continue }
            try? ProcessControl.send(signal, to: program)  // ESRCH: it just ended; the next wait sees it
        }
    }

    /// What a lazy restart's pager said: it stops the program (SIGKILL) on a page checksum mismatch
    /// ("corrupt ...") or when it cannot go on ("error ..."), writing its line first. What is there
    /// now: the pager may still hold the pipe, so there is no end of file to wait for.
    private func pagerVerdict() -> ExitCode? {
        var lines: [StatusLine] = []
        for pipe in laterStatus {
            try? pipe.setNonBlocking()  // EBADF only: then nothing is read below
            lines += StatusLine.parse(pipe.readAvailable())
            try? pipe.close()  // a pipe's read end: nothing to lose
        }
        let report = Self.pagerReport(lines)
        for message in report.messages { printError("stasis: \(message)") }
        return report.verdict
    }

    /// The program (a tree's root, leading its own group) stopped: give the terminal back to our own
    /// group and stop as a job does; once continued, hand the terminal to the program's group again and
    /// continue it.
    private func stopWithProgram() {
        guard let terminal else { return }
        giveTerminalBack()
        try? ProcessControl.send(SIGSTOP, to: getpid())  // SIGSTOP to ourselves does not fail
        try? ProcessControl.setForegroundGroup(terminal.programGroup, of: terminal.fd)  // ENOTTY/EPERM: the shell moved us
        try? ProcessControl.send(SIGCONT, to: -terminal.programGroup)  // ESRCH: it ended meanwhile
    }

    private func giveTerminalBack() {
        guard let terminal else { return }
        try? ProcessControl.setForegroundGroup(terminal.ownGroup, of: terminal.fd)  // SIGTTOU is blocked; ENOTTY: it went away
    }

    /// The pager's lines to print, and the exit code they call for: 3 for "corrupt", else 9 for "error".
    static func pagerReport(_ lines: [StatusLine]) -> (messages: [String], verdict: ExitCode?) {
        var messages: [String] = []
        var verdict: ExitCode?
        for line in lines {
            switch line {
            case .corrupt(let text):
                messages.append(text)
                verdict = .badImage
            case .error(let text):
                messages.append(text)
                verdict = verdict ?? .restoreFailed
            default: break
            }
        }
        return (messages, verdict)
    }

    /// The program's end as ours: its exit status; for a signal, the same signal, except a SIGKILL
    /// from the pager, whose exit code says why (3 damaged image, 9 restore failed) instead of a
    /// SIGKILL that would look like the program's own crash.
    static func ending(waitStatus: Int32, pagerVerdict: ExitCode?) -> Ending {
        switch ExitStatus(waitStatus: waitStatus) {
        case .exited(let code): return .exit(code)
        case .signaled(let signal):
            if signal == SIGKILL, let pagerVerdict { return .exit(pagerVerdict.rawValue) }
            return .dieOf(signal)
        }
    }
}
