import CStasisABI

/// Whole-process state (stasis_process_record_t), then cwd, exe path and auxv bytes.
public struct ProcessRecord: Equatable, Sendable {
    public static func == (a: ProcessRecord, b: ProcessRecord) -> Bool {
        var x = ByteWriter(), y = ByteWriter()
        a.encode(into: &x)
        b.encode(into: &y)
        return x.bytes == y.bytes
    }

    public static let fixedSize = MemoryLayout<stasis_process_record_t>.size
    public var pid: Int32 = 0, ppid: Int32 = 0
    public var uid: UInt32 = 0, gid: UInt32 = 0, euid: UInt32 = 0, egid: UInt32 = 0
    public var umask: UInt32 = 0o022
    public var personality: UInt32 = 0
    public var name: String = ""
    public var startCode: UInt64 = 0, endCode: UInt64 = 0, startData: UInt64 = 0, endData: UInt64 = 0
    public var startBrk: UInt64 = 0, brk: UInt64 = 0, startStack: UInt64 = 0
    public var argStart: UInt64 = 0, argEnd: UInt64 = 0, envStart: UInt64 = 0, envEnd: UInt64 = 0
    public var cwd: String = ""
    public var executable: String = ""
    public var auxv: [UInt8] = []
    /// (soft, hard) per RLIMIT_* resource, 0...15.
    public var resourceLimits = [(UInt64, UInt64)](repeating: (0, 0), count: 16)
    /// REAL, VIRTUAL, PROF: interval seconds, microseconds, value seconds, microseconds.
    public var intervalTimers = [[Int64]](repeating: [0, 0, 0, 0], count: 3)
    public var noNewPrivileges: UInt32 = 0
    public var dumpable: UInt32 = 1
    public var effectiveCapabilities: UInt64 = 0

    public init() {}

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        pid = try reader.read(Int32.self); ppid = try reader.read(Int32.self)
        uid = try reader.read(UInt32.self); gid = try reader.read(UInt32.self)
        euid = try reader.read(UInt32.self); egid = try reader.read(UInt32.self)
        umask = try reader.read(UInt32.self); personality = try reader.read(UInt32.self)
        name = try reader.readFixedString(16)
        startCode = try reader.read(UInt64.self); endCode = try reader.read(UInt64.self)
        startData = try reader.read(UInt64.self); endData = try reader.read(UInt64.self)
        startBrk = try reader.read(UInt64.self); brk = try reader.read(UInt64.self)
        startStack = try reader.read(UInt64.self)
        argStart = try reader.read(UInt64.self); argEnd = try reader.read(UInt64.self)
        envStart = try reader.read(UInt64.self); envEnd = try reader.read(UInt64.self)
        let cwdBytes = Int(try reader.read(UInt32.self)), exeBytes = Int(try reader.read(UInt32.self))
        let auxvBytes = Int(try reader.read(UInt32.self))
        _ = try reader.read(UInt32.self)
        for i in 0..<16 { resourceLimits[i] = (try reader.read(UInt64.self), try reader.read(UInt64.self)) }
        for i in 0..<3 { for j in 0..<4 { intervalTimers[i][j] = try reader.read(Int64.self) } }
        noNewPrivileges = try reader.read(UInt32.self)
        dumpable = try reader.read(UInt32.self)
        effectiveCapabilities = try reader.read(UInt64.self)
        cwd = try reader.readString(cwdBytes)
        executable = try reader.readString(exeBytes)
        auxv = try reader.readBytes(auxvBytes)
        guard reader.remaining == 0 else { throw .invalidRecord(.process, at: reader.base, reason: "trailing bytes") }
        guard startBrk <= brk, umask <= 0o777, cwd.hasPrefix("/") else {
            throw .invalidRecord(.process, at: reader.base, reason: "implausible brk, umask or cwd")
        }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(pid); writer.write(ppid)
        writer.write(uid); writer.write(gid); writer.write(euid); writer.write(egid)
        writer.write(umask); writer.write(personality)
        writer.writeFixedString(name, count: 16)
        for v in [startCode, endCode, startData, endData, startBrk, brk, startStack, argStart, argEnd, envStart, envEnd] {
            writer.write(v)
        }
        writer.write(UInt32(cwd.utf8.count)); writer.write(UInt32(executable.utf8.count))
        writer.write(UInt32(auxv.count)); writer.write(UInt32(0))
        for (soft, hard) in resourceLimits { writer.write(soft); writer.write(hard) }
        for timer in intervalTimers { for v in timer { writer.write(v) } }
        writer.write(noNewPrivileges); writer.write(dumpable); writer.write(effectiveCapabilities)
        writer.write(bytes: Array(cwd.utf8)); writer.write(bytes: Array(executable.utf8)); writer.write(bytes: auxv)
    }
}
