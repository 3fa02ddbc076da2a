import Glibc

/// posix_spawn(3) of `path` with the child's signal state reset (nothing blocked, every disposition
/// default), so the spawner's handlers and masks never leak into it. `fileActions` sets up the child's
/// descriptors; `newSession` makes it a session leader (POSIX_SPAWN_SETSID).
public func spawnWithDefaultSignals(
    _ path: String, arguments: [String], environment: [String], newSession: Bool = false,
    fileActions: (inout posix_spawn_file_actions_t) -> Void
) throws(Errno) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    fileActions(&actions)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (newSession ? 0x80 /* SETSID */ : 0)))
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    let envp = environment.map { strdup($0) } + [nil]
    defer { for p in envp { free(p) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard result == 0 else { throw Errno(rawValue: result) }
    return pid
}
