import CStasisABI
import StasisImageSamples
import Testing

@testable import StasisImage

struct TreeManifestTests {
    @Test func roundTrips() throws {
        let manifest = sampleManifest()
        let decoded = try TreeManifest.decode(from: ByteArraySource(manifest.encode()))
        #expect(decoded.processes == manifest.processes)
        #expect(decoded.header.pid == 1000 && decoded.header.threadCount == 0)
        #expect(decoded.children(of: 1001).map(\.pid) == [1002])
        #expect(MemoryLayout<stasis_tree_process_record_t>.size == TreeProcessRecord.size)
    }

    @Test func aParentMustComeBeforeItsChild() {
        var manifest = sampleManifest()
        manifest.processes.swapAt(1, 2)
        #expect(throws: ImageError.self) { try TreeManifest.decode(from: ByteArraySource(manifest.encode())) }
    }

    @Test func theRootComesFirstAndOnce() {
        var manifest = sampleManifest()
        manifest.processes[1].flags.insert(.root)
        #expect(throws: ImageError.self) { try TreeManifest.decode(from: ByteArraySource(manifest.encode())) }
        var noRoot = sampleManifest()
        noRoot.processes[0].flags.remove(.root)
        #expect(throws: ImageError.self) { try TreeManifest.decode(from: ByteArraySource(noRoot.encode())) }
    }

    @Test func aZombieHasNoImageAndALiveProcessHasOne() {
        var manifest = sampleManifest()
        manifest.processes[2].imageBytes = 4096
        #expect(throws: ImageError.self) { try TreeManifest.decode(from: ByteArraySource(manifest.encode())) }
        var live = sampleManifest()
        live.processes[1].imageBytes = 0
        #expect(throws: ImageError.self) { try TreeManifest.decode(from: ByteArraySource(live.encode())) }
    }

    @Test func aProcessImageIsNotAManifestAndTheOtherWayRound() {
        let (image, _) = sampleImage()
        #expect(throws: ImageError.self) { try TreeManifest.decode(from: ByteArraySource(image)) }
        #expect(throws: ImageError.self) { try Image.decode(from: ByteArraySource(sampleManifest().encode())) }
    }

    @Test func everyTruncationIsAnError() {
        let bytes = sampleManifest().encode()
        for length in stride(from: 0, to: bytes.count, by: 7) {
            #expect(throws: ImageError.self) { try TreeManifest.decode(from: ByteArraySource(Array(bytes.prefix(length)))) }
        }
    }

    @Test func sharedDescriptionsDecodeAndMustNameTheirOwnFD() throws {
        var share = ByteWriter()
        SharedDescriptionRecord(fd: 0, ownerPID: 77, ownerFD: 5).encode(into: &share)
        // sampleImage has no fd 0: the record names a descriptor the image does not hold.
        let (bytes, _) = sampleImage(extra: [(.sharedDescription, share.bytes)])
        #expect(throws: ImageError.self) { try Image.decode(from: ByteArraySource(bytes)) }
    }
}
