import StasisImage

/// The AGENT and THREAD records every hand-built test image carries (one thread, pid 4242,
/// registers a restorer would accept, a zeroed 2432-byte xsave area).
func appendSampleAgentAndThread(to encoder: inout ImageEncoder) {
    var w = ByteWriter()
    var agent = AgentRecord()
    agent.restoreTail = 0x400100
    agent.restoreThreadTail = 0x400180
    agent.stateAddress = 0x600000
    agent.encode(into: &w)
    encoder.append(kind: .agent, payload: w.bytes)
    var thread = ThreadRecord()
    thread.tid = 4242
    thread.generalRegisters[ThreadRecord.ripIndex] = 0x400200
    thread.generalRegisters[ThreadRecord.rspIndex] = 0x7ffe_0000_0000
    thread.generalRegisters[ThreadRecord.segmentsIndex] = 0x2b_0000_0000_0033
    thread.xsave = [UInt8](repeating: 0, count: 2432)
    w = ByteWriter()
    thread.encode(into: &w)
    encoder.append(kind: .thread, payload: w.bytes)
}
