// swift-concurrency: Dispatch queues and async/await tasks doing work across a checkpoint.
// On SIGTERM: stops the work, checks the counts, prints PASS or FAIL.
import Dispatch
import Glibc

final class Counter: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var value = 0
    init() { pthread_mutex_init(&lock, nil) }
    func add(_ n: Int) { pthread_mutex_lock(&lock); value += n; pthread_mutex_unlock(&lock) }
    var current: Int { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return value }
}

nonisolated(unsafe) var stopRequested: sig_atomic_t = 0
signal(SIGTERM) { _ in stopRequested = 1 }

let stopFlag = Counter()  // set by the main thread once the signal arrives; read by the workers
let dispatched = Counter()
// A repeating Dispatch timer (timerfd + epoll inside libdispatch) on a serial queue.
let queue = DispatchQueue(label: "work")
let timer = DispatchSource.makeTimerSource(queue: queue)
timer.schedule(deadline: .now(), repeating: .milliseconds(1))
timer.setEventHandler { dispatched.add(1) }
timer.resume()

actor Ledger {
    var entries = 0
    func record() { entries += 1 }
}

let ledger = Ledger()
let asyncCount = Counter()
let taskDone = DispatchSemaphore(value: 0)
Task.detached {
    await withTaskGroup(of: Void.self) { tasks in
        for _ in 0..<4 {
            tasks.addTask {
                while stopFlag.current == 0 {
                    asyncCount.add(1)
                    await ledger.record()
                    try? await Task.sleep(nanoseconds: 200_000)
                }
            }
        }
    }
    taskDone.signal()
}

usleep(200_000)
print("READY")
fflush(stdout)
while stopRequested == 0 { usleep(1000) }
stopFlag.add(1)
timer.cancel()
taskDone.wait()
let ledgerRead = DispatchSemaphore(value: 0)
nonisolated(unsafe) var recorded = 0
Task.detached {
    recorded = await ledger.entries
    ledgerRead.signal()
}
ledgerRead.wait()
let ok = dispatched.current > 0 && asyncCount.current > 0 && recorded == asyncCount.current
print(ok ? "PASS dispatch \(dispatched.current) tasks \(recorded)" : "FAIL dispatch \(dispatched.current) tasks \(asyncCount.current) ledger \(recorded)")
fflush(stdout)
