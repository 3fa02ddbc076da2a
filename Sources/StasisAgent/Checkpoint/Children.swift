// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// Child processes. Stasis restores one process: a child (running or a zombie not yet reaped) would
// not come back, and the parent's wait() after a restart would then report a status no child ever
// had (a shell's `wait` says 0). Until process trees are checkpointed whole, a process with children
// is refused by name at checkpoint time, and keeps running.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    /// Throws .hasChildren naming the first child found in any thread's /proc/self/task/TID/children
    /// (each thread has its own list). Called with every thread frozen: none can fork meanwhile.
    @_noAllocation @_noLocks
    func refuseChildren(arena: inout FreezeArena) throws(FreezeFailure) {
        let directoryCapacity = 64 * 1024, childrenCapacity = 4096
        guard let entries = arena.take(directoryCapacity), let children = arena.take(childrenCapacity) else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace)
        }
        var tasks = try TaskList(buffer: entries, capacity: directoryCapacity)
        defer { tasks.close() }
        var path = TextBuffer(children, capacity: 64)
        let text = (children + 64).assumingMemoryBound(to: UInt8.self)
        while let tid = try tasks.next() {
            path.removeAll()
            path.append("/proc/self/task/")
            path.append(decimal: tid)
            path.append("/children")
            // "PID PID ... " (empty: none). A thread gone since the listing has no file: no children.
            let count = ProcFile.read(path.cString, into: UnsafeMutableRawPointer(text), capacity: childrenCapacity - 64)
            guard count > 0 else { continue }
            var list = ByteCursor(text, count: count)
            if let child = list.decimal() { throw FreezeFailure(step: .hasChildren, errno: 0, object: Int(child)) }
        }
    }
}
