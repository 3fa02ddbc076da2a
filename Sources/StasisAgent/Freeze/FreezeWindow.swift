// FREEZE WINDOW: see RawSyscall.swift.
//
// The leader's half of the freeze protocol (the followers' half is follow_freeze in
// CStasisShim/signal_entry.c):
//
//   leader                                   each other thread (follower)
//   freeze_active = 1, captured = 0
//   list /proc/self/task, rt_tgsigqueueinfo
//   (SI_QUEUE, value STASIS_FREEZE_MAGIC) --> handler: capture own registers, xsave,
//                                              FS base, rseq... into a slot;
//   futex-wait on `captured` <--------------- captured += 1, futex wake;
//   re-list until no new thread appears        futex-wait on freeze_generation
//   take the process's pending signals          (each took its own pending signals)
//   ... write the image ...
//   freeze_active = 0, generation += 1 ------> the main thread queues the pending signals back,
//                                              the others wait for it; return from the handler
//
// Threads that exit meanwhile are dropped (ESRCH); a thread that does not answer within
// the bound fails the checkpoint, and everyone is thawed.
import CStasisABI
import CStasisShim
import StasisProc

struct FreezeWindow {
    let state: UnsafeMutablePointer<stasis_agent_state_t>
    let signal: Int32
    let pid: Int
    let ownTID: Int
    let signaled: UnsafeMutablePointer<Int32>
    let directory: UnsafeMutableRawPointer
    let siginfo: UnsafeMutableRawPointer
    let slots: UnsafeMutablePointer<stasis_thread_slot_t>
    /// The leader's own thread record (its pending_signals are narrowed to what stays pending).
    let leaderRecord: UnsafeMutablePointer<stasis_thread_record_t>
    var signaledCount = 0
    static let directoryCapacity = 64 * 1024
    static let deadlineNanoseconds: Int64 = 5_000_000_000

    @_noAllocation @_noLocks
    init?(arena: inout FreezeArena, capture: UnsafeMutablePointer<stasis_capture_t>) {
        guard let signaled = arena.take(Int(STASIS_MAX_THREADS) * 4), let directory = arena.take(Self.directoryCapacity),
            let siginfo = arena.take(128)
        else { return nil }
        self.state = capture.pointee.state
        self.signal = capture.pointee.config.pointee.trigger_signal
        self.pid = RawSyscall.call(STASIS_NR_getpid)
        self.ownTID = Int(capture.pointee.thread.tid)
        self.signaled = signaled.assumingMemoryBound(to: Int32.self)
        self.directory = directory
        self.siginfo = siginfo
        // stasis_capture_t lives in the leader's handler frame for the whole checkpoint.
        self.leaderRecord = _unsafePerformance { stasis_capture_thread(capture) }
        guard let slots = UnsafeMutablePointer<stasis_thread_slot_t>(bitPattern: UInt(capture.pointee.config.pointee.slots_start))
        else { return nil }
        self.slots = slots
    }

    /// Stops every other thread in its handler; returns how many captured themselves.
    @_noAllocation @_noLocks
    mutating func freezeOthers() throws(FreezeFailure) -> Int {
        _unsafePerformance {
            stasis_atomic_store(&state.pointee.captured, 0)
            stasis_atomic_store(&state.pointee.slot_count, 0)
            stasis_atomic_store(&state.pointee.freeze_active, 1)
            // Pending signals come out with their siginfo: the leader's own now, each follower's in its
            // handler, the process's once all are frozen; thaw() puts them back (pending_signals.c).
            stasis_pending_begin(leaderRecord)
        }
        let deadline = monotonicNanoseconds() + Self.deadlineNanoseconds
        while true {
            let added = try signalNewThreads()
            var expected = signaledCount
            while true {
                let captured = Int(_unsafePerformance { stasis_atomic_load(&state.pointee.captured) })
                if captured >= expected { break }
                if monotonicNanoseconds() > deadline {
                    throw FreezeFailure(step: .threadsDidNotStop, errno: 0, object: expected - captured)
                }
                _ = _unsafePerformance { stasis_futex_wait(&state.pointee.captured, Int32(captured), 10_000_000) }
                expected = signaledCount - exitedWithoutCapture()
            }
            if added == 0 {
                _unsafePerformance { stasis_pending_take_process(leaderRecord) }
                return Int(_unsafePerformance { stasis_atomic_load(&state.pointee.captured) })
            }
        }
    }

    /// Lets the followers return from their handlers.
    @_noAllocation @_noLocks
    func thaw() {
        _unsafePerformance {
            stasis_pending_release()  // before the generation moves: followers look once they wake
            stasis_atomic_store(&state.pointee.freeze_active, 0)
            _ = stasis_atomic_add(&state.pointee.freeze_generation, 1)
            _ = stasis_futex_wake_all(&state.pointee.freeze_generation)
        }
    }

    /// Sends the freeze signal to every thread in /proc/self/task not signaled yet; returns how many.
    @_noAllocation @_noLocks
    private mutating func signalNewThreads() throws(FreezeFailure) -> Int {
        var tasks = try TaskList(buffer: directory, capacity: Self.directoryCapacity)
        defer { tasks.close() }
        var added = 0
        while let tid = try tasks.next() {
            if tid == ownTID || isSignaled(Int32(tid)) { continue }
            guard signaledCount < Int(STASIS_MAX_THREADS) else {
                throw FreezeFailure(step: .tooManyThreads, errno: RawErrno.tooBig, object: signaledCount)
            }
            let sent = sendFreeze(to: tid)
            if sent == -3 { continue }  // ESRCH: exited since the listing
            if sent < 0 { throw FreezeFailure(step: .signalThread, errno: -sent, object: tid) }
            signaled[signaledCount] = Int32(tid)
            signaledCount += 1
            added += 1
        }
        return added
    }

    @_noAllocation @_noLocks
    private func isSignaled(_ tid: Int32) -> Bool {
        for i in 0..<signaledCount where signaled[i] == tid { return true }
        return false
    }

    /// rt_tgsigqueueinfo with si_code SI_QUEUE and our pid: the follower knows it is a freeze, not a request.
    @_noAllocation @_noLocks
    private func sendFreeze(to tid: Int) -> Int {
        let info = siginfo.bindMemory(to: stasis_queue_siginfo_t.self, capacity: 1)
        info.pointee = stasis_queue_siginfo_t()
        info.pointee.signo = signal
        info.pointee.code = STASIS_SI_QUEUE
        info.pointee.pid = Int32(truncatingIfNeeded: pid)
        info.pointee.uid = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getuid))
        info.pointee.value = UInt64(STASIS_FREEZE_MAGIC)
        return RawSyscall.call(STASIS_NR_rt_tgsigqueueinfo, pid, tid, Int(signal), Int(bitPattern: siginfo))
    }

    /// Signaled threads that are gone and never captured themselves.
    @_noAllocation @_noLocks
    private func exitedWithoutCapture() -> Int {
        let filled = Int(_unsafePerformance { stasis_atomic_load(&state.pointee.slot_count) })
        var gone = 0
        for i in 0..<signaledCount {
            let tid = signaled[i]
            if RawSyscall.call(STASIS_NR_tgkill, pid, Int(tid), 0) != -3 { continue }
            var captured = false
            for j in 0..<min(filled, Int(STASIS_MAX_THREADS)) where slots[j].record.tid == tid { captured = true }
            if !captured { gone += 1 }
        }
        return gone
    }

}
