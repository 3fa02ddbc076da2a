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

let dispatched = Counter()
let group = DispatchGroup()
let queue = DispatchQueue(label: "work", attributes: .concurrent)
for _ in 0..<4 {
    queue.async(group: group) {
        while stopRequested == 0 {
            dispatched.add(1)
            usleep(100)
        }
    }
}

actor Accumulator {
    var total = 0
    func add(_ n: Int) { total += n }
}

let accumulator = Accumulator()
let taskDone = DispatchSemaphore(value: 0)
Task.detached {
    await withTaskGroup(of: Int.self) { tasks in
        for i in 0..<4 {
            tasks.addTask {
                var local = 0
                while stopRequested == 0 {
                    local += i + 1
                    try? await Task.sleep(nanoseconds: 200_000)
                }
                return local
            }
        }
        for await partial in tasks { await accumulator.add(partial) }
    }
    taskDone.signal()
}

usleep(200_000)
print("READY")
fflush(stdout)
while stopRequested == 0 { usleep(1000) }
group.wait()
taskDone.wait()
let total = DispatchSemaphore(value: 0)
nonisolated(unsafe) var result = 0
Task.detached {
    result = await accumulator.total
    total.signal()
}
total.wait()
print(dispatched.current > 0 && result > 0 ? "PASS dispatch \(dispatched.current) tasks \(result)" : "FAIL")
fflush(stdout)
