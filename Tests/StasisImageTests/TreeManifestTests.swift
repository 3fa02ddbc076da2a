import CStasisABI
import Testing

@testable import StasisImage

/// A root (1000) with a running child (1001), whose child (1002) is a zombie.
func sampleManifest() -> TreeManifest {
    var manifest = TreeManifest()
    manifest.header.xcr0 = 0xe7
    manifest.header.xsaveSize = 2432
    manifest.header.threadCount = 0
    manifest.header.pid = 1000
    manifest.header.sequence = 2
    manifest.header.program = "/bin/sh"
    var root = TreeProcessRecord()
    root.pid = 1000
    root.ppid = 999
    root.pgid = 1000
    root.sid = 900
    root.flags = [.root, .ownSession]
    root.comm = "sh"
    root.imageBytes = 8192
    root.imageHeaderCRC = 0x1234
    var child = root
    child.pid = 1001
    child.ppid = 1000
    child.flags = [.childSubreaper]
    child.comm = "worker"
    child.parentDeathSignal = 15
    var zombie = child
    zombie.pid = 1002
    zombie.ppid = 1001
    zombie.state = .zombie
    zombie.exitStatus = 42 << 8
    zombie.imageBytes = 0
    zombie.imageHeaderCRC = 0
    manifest.processes = [root, child, zombie]
    return manifest
}

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
