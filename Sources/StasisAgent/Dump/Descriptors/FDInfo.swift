// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import StasisProc

@_noAllocation @_noLocks
func linkEquals(_ bytes: UnsafePointer<UInt8>, _ count: Int, _ text: StaticString) -> Bool {
    guard count == text.utf8CodeUnitCount else { return false }
    return endsWith(bytes, count, text)
}

@_noAllocation @_noLocks
func startsWith(_ bytes: UnsafePointer<UInt8>, _ count: Int, _ prefix: StaticString) -> Bool {
    let n = prefix.utf8CodeUnitCount
    guard count >= n else { return false }
    for i in 0..<n where bytes[i] != prefix.utf8Start[i] { return false }
    return true
}

/// The text of /proc/self/fdinfo/N ("name:<spaces>value" lines).
struct FDInfo {
    let text: UnsafePointer<UInt8>
    let count: Int

    /// The decimal value after `name` at the start of a line.
    @_noAllocation @_noLocks
    func decimalField(_ name: StaticString) -> UInt64? {
        guard var line = find(name) else { return nil }
        guard let value = line.decimal(), value >= 0 else { return nil }
        return UInt64(value)
    }

    /// "name: (A, B)" as two decimals.
    @_noAllocation @_noLocks
    func pairField(_ name: StaticString) -> (Int64, Int64)? {
        guard var line = find(name), line.skipWord("("), let a = line.decimal(), line.skipWord(",") else { return nil }
        line.skip(UInt8(ascii: " "))
        guard let b = line.decimal() else { return nil }
        return (a, b)
    }

    /// A cursor just past `name` and its blanks, on the line that starts with it.
    @_noAllocation @_noLocks
    func find(_ name: StaticString) -> ByteCursor? {
        var cursor = ByteCursor(text, count: count)
        while !cursor.atEnd {
            let lineStart = cursor.index
            cursor.skipPast(UInt8(ascii: "\n"))
            var line = ByteCursor(text + lineStart, count: cursor.index - lineStart)
            if line.skipWord(name) {
                while line.current == UInt8(ascii: " ") || line.current == UInt8(ascii: "\t") { line.index += 1 }
                return line
            }
        }
        return nil
    }

    /// The hexadecimal value after `name` at the start of a line.
    @_noAllocation @_noLocks
    func hexField(_ name: StaticString) -> UInt64? {
        guard var line = find(name) else { return nil }
        return line.hex()
    }
}

extension FileDescriptorDumper {
    @_noAllocation @_noLocks
    func readInfo(_ fd: Int32) throws(FreezeFailure) -> FDInfo {
        var path = TextBuffer(pathMemory, capacity: 64)
        path.append("/proc/self/fdinfo/")
        path.append(decimal: Int(fd))
        let n = ProcFile.read(path.cString, into: infoBuffer, capacity: Self.infoCapacity)
        if n < 0 { throw FreezeFailure(step: .readProc, errno: -n, object: Int(fd)) }
        return FDInfo(text: infoBuffer.assumingMemoryBound(to: UInt8.self), count: n)
    }
}
