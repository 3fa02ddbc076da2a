import CStasisABI
import StasisImage
import StasisImageSamples
import Testing

/// PENDING_SIGNAL records: a queued signal's siginfo, in queue order (issue 11, item 2).
@Suite struct PendingSignalCodecTests {
    static func record(signal: Int32, tid: Int32 = 4242, process: Bool = false, code: Int32 = -1, value: Int32 = 7,
                       siginfoSignal: Int32? = nil) -> PendingSignalRecord {
        var record = PendingSignalRecord()
        record.signal = signal
        record.tid = tid
        record.flags = process ? PendingSignalRecord.processDirected : 0
        var info = ByteWriter()
        info.write(siginfoSignal ?? signal)  // si_signo
        info.write(Int32(0))                 // si_errno
        info.write(code)                     // si_code
        info.write(Int32(0))
        info.write(Int32(4242))              // si_pid
        info.write(UInt32(1000))             // si_uid
        info.write(value)                    // si_value (sival_int)
        record.siginfo = info.bytes + [UInt8](repeating: 0, count: 128 - info.bytes.count)
        return record
    }

    static func payload(_ record: PendingSignalRecord) -> (RecordKind, [UInt8]) {
        var w = ByteWriter()
        record.encode(into: &w)
        return (.pendingSignal, w.bytes)
    }

    @Test func layoutMatchesTheCStruct() {
        #expect(MemoryLayout<stasis_pending_signal_record_t>.size == PendingSignalRecord.size)
        #expect(MemoryLayout<stasis_pending_signal_record_t>.offset(of: \.signal) == 8)
        #expect(MemoryLayout<stasis_pending_signal_record_t>.offset(of: \.siginfo) == 16)
        #expect(PendingSignalRecord.processDirected == STASIS_PENDING_PROCESS)
        #expect(RecordKind.pendingSignal.rawValue == UInt32(STASIS_RECORD_PENDING_SIGNAL))
    }

    @Test func roundTripsEveryInstanceInOrder() throws {
        let records = [Self.record(signal: 35, process: true, value: 7), Self.record(signal: 35, process: true, value: 8),
                       Self.record(signal: 10, code: 0, value: 0)]
        let (bytes, _) = sampleImage(extra: records.map(Self.payload))
        let image = try Image.decode(from: ByteArraySource(bytes))
        #expect(image.pendingSignals == records)
        #expect(image.pendingSignals.map(\.value) == [7, 8, 0])
        #expect(image.pendingSignals[0].isProcessDirected && !image.pendingSignals[2].isProcessDirected)
        #expect(image.pendingSignals[2].code == 0 && image.pendingSignals[2].senderPID == 4242)
        #expect(image.pendingSignals[2].senderUID == 1000)
    }

    @Test(arguments: [Self.record(signal: 0), Self.record(signal: 9), Self.record(signal: 19), Self.record(signal: 65),
                      Self.record(signal: 35, siginfoSignal: 36), Self.record(signal: 35, tid: 0)])
    func rejectsARecordTheRestorerWouldRefuse(_ record: PendingSignalRecord) {
        let (bytes, _) = sampleImage(extra: [Self.payload(record)])
        #expect(throws: ImageError.self) { try Image.decode(from: ByteArraySource(bytes)) }
    }

    @Test func rejectsUnknownFlagsAndAThreadTheImageDoesNotHold() {
        var flagged = Self.record(signal: 35)
        flagged.flags = 2
        for record in [flagged, Self.record(signal: 35, tid: 777)] {
            let (bytes, _) = sampleImage(extra: [Self.payload(record)])
            #expect(throws: ImageError.self) { try Image.decode(from: ByteArraySource(bytes)) }
        }
        // The same thread id is fine for a process-directed instance (the thread that took it out).
        let (bytes, _) = sampleImage(extra: [Self.payload(Self.record(signal: 35, tid: 777, process: true))])
        #expect(throws: Never.self) { try Image.decode(from: ByteArraySource(bytes)) }
    }
}
