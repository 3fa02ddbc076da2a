import Glibc
import StasisSystem
import Testing

/// A child started with posix_spawn: default signal dispositions, an empty signal mask (the test runner's
/// threads block signals and a child would inherit that), only fds 0-2, stdout/stderr to a file.
/// Never fork() from Swift.
final class ChildProcess {
    let pid: pid_t
    private(set) var exitStatus: Int32?

    enum Termination: Equatable {
        case exited(Int32)
        case signaled(Int32)
    }

    /// `newSession`: the child leads a new session, so that a terminal as `inputPath` becomes its
    /// controlling terminal (with it in the foreground).
    init(_ path: String, _ arguments: [String], environment: [String] = [], outputPath: String,
         workingDirectory: String? = nil, inputPath: String = "/dev/null", newSession: Bool = false) throws {
        var env = environment
        // STASIS_COMPRESS=1 swift test: every fixture under `stasis run` writes compressed images.
        for key in ["PATH", "HOME", "LANG", "PYENV_ROOT", "PYENV_VERSION", "STASIS_COMPRESS"] {
            if let value = getenv(key), !environment.contains(where: { $0.hasPrefix(key + "=") }) {
                env.append("\(key)=\(String(cString: value))")
            }
        }
        let child: pid_t
        do {
            child = try spawnWithDefaultSignals(path, arguments: arguments, environment: env, newSession: newSession) { actions in
                posix_spawn_file_actions_addopen(&actions, 0, inputPath, inputPath == "/dev/null" ? O_RDONLY : O_RDWR, 0)
                posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
                _ = spawnAddCloseFrom(&actions, 3)
                if let workingDirectory { _ = spawnAddChdir(&actions, workingDirectory) }
            }
        } catch {
            throw TestFailure("posix_spawn \(path): \(error)")
        }
        pid = child
        ChildRegistry.shared.add(child)
    }

    func send(_ signal: Int32) {
        if ChildRegistry.shared.contains(pid) { kill(pid, signal) }
    }

    /// Waits up to `seconds`; SIGKILLs and fails the wait on timeout.
    @discardableResult
    func wait(seconds: Double = 60) throws -> Termination {
        let deadline = monotonicNow() + seconds
        while true {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                ChildRegistry.shared.remove(pid)
                if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
                return .signaled(status & 0x7f)
            }
            if r < 0 && errno != EINTR { throw TestFailure("waitpid \(pid): \(String(cString: strerror(errno)))") }
            if monotonicNow() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                ChildRegistry.shared.remove(pid)
                throw TestFailure("process \(pid) did not finish within \(seconds) s")
            }
            usleep(2000)
        }
    }

    /// Kills (SIGKILL) and reaps, so the PID is free at once (PID 1 reaps orphans late here).
    func killAndReap() {
        guard ChildRegistry.shared.contains(pid) else { return }  // already reaped: the PID may be someone else's
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        ChildRegistry.shared.remove(pid)
    }

    deinit {
        if ChildRegistry.shared.contains(pid) { killAndReap() }
    }
}

/// Every child a test started, so that a failing test still ends them.
final class ChildRegistry: @unchecked Sendable {
    static let shared = ChildRegistry()
    private var pids = Set<pid_t>()
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    func add(_ pid: pid_t) { pthread_mutex_lock(&lock); pids.insert(pid); pthread_mutex_unlock(&lock) }
    func remove(_ pid: pid_t) { pthread_mutex_lock(&lock); pids.remove(pid); pthread_mutex_unlock(&lock) }
    func contains(_ pid: pid_t) -> Bool { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return pids.contains(pid) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// glibc 2.34+ GNU extensions that Swift's Glibc module does not show (they need _GNU_SOURCE).
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
func spawnAddCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32
@_silgen_name("posix_spawn_file_actions_addchdir_np")
func spawnAddChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: UnsafePointer<CChar>) -> Int32

/// The PID `launcher` (a `stasis restart` or `run`) writes to `pidFile`, once it is there; nil when the
/// launcher ended first. Throws after 60 s, with `log` in the message.
func waitForPIDFile(_ pidFile: String, of launcher: ChildProcess, log: String, _ what: String) throws -> pid_t? {
    var written: pid_t?
    do {
        try waitUntil("\(what): the PID in \(pidFile)", seconds: 60) {
            written = (try? String(contentsOfFile: pidFile)).flatMap { pid_t($0.trimmingCharacters(in: "\n")) }
            return written != nil || processState(launcher.pid) == "Z"
        }
    } catch {
        throw TestFailure("\(what): no --pid-file within 60 s; log: \((try? String(contentsOfFile: log)) ?? "")")
    }
    return written
}
