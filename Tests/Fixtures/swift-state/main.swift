// swift-state: a self-verifying Swift fixture. Holds arrays, a dictionary, class instances and a counter;
// on SIGTERM verifies them, allocates more, and prints PASS or FAIL.
import Glibc

nonisolated(unsafe) var stopRequested: sig_atomic_t = 0
signal(SIGTERM) { _ in stopRequested = 1 }

final class Node {
    let value: Int
    var next: Node?
    init(_ value: Int, next: Node?) { self.value = value; self.next = next }
}

var numbers = (0..<500_000).map { $0 &* 31 }
var names: [Int: String] = [:]
for i in 0..<50_000 { names[i] = "name-\(i)" }
var list: Node? = nil
for i in 0..<10_000 { list = Node(i, next: list) }
print("READY", getpid())
fflush(stdout)

var count = 0
while stopRequested == 0 {
    count += 1
    if count % 100_000 == 0 { numbers[count / 100_000 % numbers.count] &+= 0 }
}

var ok = numbers.enumerated().allSatisfy { $0.element == $0.offset &* 31 }
ok = ok && (0..<50_000).allSatisfy { names[$0] == "name-\($0)" }
var expected = 9_999
var node = list
while let current = node {
    ok = ok && current.value == expected
    expected -= 1
    node = current.next
}
ok = ok && expected == -1
let more = (0..<200_000).map { String($0) }
ok = ok && more.count == 200_000
print(ok && count > 0 ? "PASS \(count)" : "FAIL")
fflush(stdout)
