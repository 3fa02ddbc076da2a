// Hand-built images shared by the test targets (StasisImageTests, StasisLauncherTests).
import StasisImage

/// The AGENT and THREAD records every hand-built test image carries (one thread, tid 4242 unless told,
/// registers a restorer would accept, a zeroed 2432-byte xsave area).
public func appendSampleAgentAndThread(to encoder: inout ImageEncoder, tid: Int32 = 4242) {
    var w = ByteWriter()
    var agent = AgentRecord()
    agent.restoreTail = 0x400100
    agent.restoreThreadTail = 0x400180
    agent.stateAddress = 0x600000
    agent.encode(into: &w)
    encoder.append(kind: .agent, payload: w.bytes)
    var thread = ThreadRecord()
    thread.tid = tid
    thread.generalRegisters[ThreadRecord.ripIndex] = 0x400200
    thread.generalRegisters[ThreadRecord.rspIndex] = 0x7ffe_0000_0000
    thread.generalRegisters[ThreadRecord.segmentsIndex] = 0x2b_0000_0000_0033
    thread.xsave = [UInt8](repeating: 0, count: 2432)
    w = ByteWriter()
    thread.encode(into: &w)
    encoder.append(kind: .thread, payload: w.bytes)
}

/// The program's code area the AGENT record's restore tails point into: 0x400000, one page of `path`.
public func appendSampleCodeArea(to encoder: inout ImageEncoder, path: String = "/usr/bin/sample") {
    var code = MemoryAreaRecord()
    code.start = 0x400000
    code.end = 0x401000
    code.protection = 5
    code.path = path
    code.fileSize = 4096
    encoder.append(code, pageData: [])
}

/// A small valid image: header, the records the restorer needs, one area with two stored pages.
/// With `parent`, an incremental image: PARENT first, and the area's page 1 inherited.
/// `extra` records go just before END. `pid` is the header's, PROCESS's and the thread's; `key` signs it.
public func sampleImage(parent: ParentRecord? = nil, parentFirst: Bool = true, extra: [(RecordKind, [UInt8])] = [],
                        pid: Int32 = 4242, key: [UInt8]? = nil) -> (bytes: [UInt8], area: MemoryAreaRecord) {
    var header = ImageHeader()
    header.xcr0 = 0xe7
    header.xsaveSize = 2432
    header.pid = pid
    header.sequence = 3
    header.kernelRelease = "6.18.0"
    header.program = "/usr/bin/sample"
    var encoder = ImageEncoder(header: header, key: key)
    if let parent, parentFirst { encoder.append(parent) }
    var process = ProcessRecord()
    process.pid = pid
    process.name = "sample"
    process.cwd = "/tmp"
    process.executable = "/usr/bin/sample"
    process.startBrk = 0x1000
    process.brk = 0x3000
    process.auxv = [1, 2, 3, 4, 5, 6, 7, 8]
    var w = ByteWriter()
    process.encode(into: &w)
    encoder.append(kind: .process, payload: w.bytes)
    appendSampleAgentAndThread(to: &encoder, tid: pid)
    appendSampleCodeArea(to: &encoder)
    var area = MemoryAreaRecord()
    area.start = 0x600000
    area.end = 0x604000
    area.protection = 3
    area.flags = [.anonymous]
    area.runs = [.init(firstPage: 0, pageCount: 1), .init(firstPage: 2, pageCount: 1)]
    if parent != nil { area.runs.insert(.init(firstPage: 1, pageCount: 1, isInherited: true), at: 1) }
    area.dataBytes = 8192
    encoder.append(area, pageData: [UInt8](repeating: 0xab, count: 8192))
    if let parent, !parentFirst { encoder.append(parent) }
    for (kind, payload) in extra { encoder.append(kind: kind, payload: payload) }
    return (encoder.finish(), area)
}
