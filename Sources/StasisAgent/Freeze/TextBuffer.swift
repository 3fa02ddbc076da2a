// FREEZE WINDOW: see RawSyscall.swift.

/// A fixed-capacity byte buffer for paths and messages: no allocation, silently truncates.
struct TextBuffer {
    let bytes: UnsafeMutablePointer<UInt8>
    let capacity: Int
    private(set) var count = 0

    @_noAllocation @_noLocks
    init(_ memory: UnsafeMutableRawPointer, capacity: Int) {
        bytes = memory.assumingMemoryBound(to: UInt8.self)
        self.capacity = capacity
        bytes[0] = 0
    }

    /// NUL-terminated view for system calls.
    var cString: UnsafePointer<CChar> { UnsafeRawPointer(bytes).assumingMemoryBound(to: CChar.self) }

    @_noAllocation @_noLocks
    mutating func append(_ byte: UInt8) {
        guard count + 1 < capacity else { return }
        bytes[count] = byte
        count += 1
        bytes[count] = 0
    }

    @_noAllocation @_noLocks
    mutating func append(_ text: StaticString) {
        let start = text.utf8Start
        for i in 0..<text.utf8CodeUnitCount { append(start[i]) }
    }

    @_noAllocation @_noLocks
    mutating func append(bytes source: UnsafePointer<UInt8>, count length: Int) {
        for i in 0..<length { append(source[i]) }
    }

    /// Appends a NUL-terminated C string.
    @_noAllocation @_noLocks
    mutating func append(cString source: UnsafePointer<CChar>) {
        var i = 0
        while source[i] != 0 {
            append(UInt8(bitPattern: source[i]))
            i += 1
        }
    }

    @_noAllocation @_noLocks
    mutating func append(cStringAt source: UnsafeRawPointer) {
        append(cString: source.assumingMemoryBound(to: CChar.self))
    }

    @_noAllocation @_noLocks
    mutating func append(decimal value: Int, minimumDigits: Int = 1) {
        if value < 0 { append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 digit slots, one byte each
        var n = 0
        withUnsafeMutableBytes(of: &digits) { slots in
            repeat {
                slots[n] = UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
                n += 1
            } while magnitude > 0 && n < 24
            while n < minimumDigits && n < 24 {
                slots[n] = 0
                n += 1
            }
        }
        withUnsafeBytes(of: &digits) { slots in
            for i in stride(from: n - 1, through: 0, by: -1) { append(UInt8(ascii: "0") + slots[i]) }
        }
    }

    @_noAllocation @_noLocks
    mutating func append(hex value: UInt64) {
        var started = false
        for shift in stride(from: 60, through: 0, by: -4) {
            let nibble = UInt8(truncatingIfNeeded: (value >> UInt64(shift)) & 0xf)
            if nibble != 0 || started || shift == 0 {
                started = true
                append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
            }
        }
    }

    @_noAllocation @_noLocks
    mutating func removeAll() {
        count = 0
        bytes[0] = 0
    }
}

