import CStasisABI
import StasisImage
import StasisImageSamples
import Testing

/// A chain of three images of one process, built in memory. Each has one 4-page anonymous area at
/// 0x600000; a stored page of image `sequence` is filled with `sequence << 4 | page`.
///   a (1, full):        pages 0-3 stored
///   b (2, parent a):    page 0 stored, 1-3 inherited
///   c (3, parent b):    page 1 stored, 0 and 2-3 inherited (page 0 from b, 2-3 from a)
enum ChainFixture {
    static let areaStart: UInt64 = 0x600000
    static let page = Int(STASIS_PAGE_SIZE)

    static func parent(_ sequence: UInt64, _ name: String, chainLength: UInt32) -> ParentRecord {
        var parent = ParentRecord()
        parent.sequence = sequence
        parent.timeNanoseconds = sequence * 1000
        parent.pid = 4242
        parent.chainLength = chainLength
        parent.name = name
        return parent
    }

    static func image(sequence: UInt64, parent: ParentRecord?, runs: [MemoryAreaRecord.PageRun], key: [UInt8]? = nil,
                      unknownRecord: Bool = false) -> [UInt8] {
        var header = ImageHeader()
        header.xcr0 = 0xe7
        header.xsaveSize = 2432
        header.pid = 4242
        header.sequence = sequence
        header.timeNanoseconds = sequence * 1000
        header.kernelRelease = "6.18.0"
        header.program = "/usr/bin/chain"
        var encoder = ImageEncoder(header: header, key: key)
        if let parent { encoder.append(parent) }
        var process = ProcessRecord()
        process.pid = 4242
        process.name = "chain"
        process.cwd = "/tmp"
        process.executable = "/usr/bin/chain"
        var w = ByteWriter()
        process.encode(into: &w)
        encoder.append(kind: .process, payload: w.bytes)
        appendSampleAgentAndThread(to: &encoder)
        if unknownRecord { encoder.append(rawKind: 99, payload: [1, 2, 3]) }  // a kind from a newer writer
        appendSampleCodeArea(to: &encoder, path: "/usr/bin/chain")
        var area = MemoryAreaRecord()
        area.start = areaStart
        area.end = areaStart + 4 * UInt64(page)
        area.protection = 3
        area.flags = [.anonymous]
        area.runs = runs
        var data: [UInt8] = []
        for run in runs where !run.isInherited {
            for p in run.firstPage..<run.firstPage + run.pageCount {
                data += [UInt8](repeating: UInt8(sequence << 4 | p), count: page)
            }
        }
        area.dataBytes = UInt64(data.count)
        encoder.append(area, pageData: data)
        return encoder.finish()
    }

    static let a = image(sequence: 1, parent: nil, runs: [.init(firstPage: 0, pageCount: 4)])
    static let b = image(sequence: 2, parent: parent(1, "a.img", chainLength: 2),
                         runs: [.init(firstPage: 0, pageCount: 1), .init(firstPage: 1, pageCount: 3, isInherited: true)])
    static func c(key: [UInt8]? = nil) -> [UInt8] {
        image(sequence: 3, parent: parent(2, "b.img", chainLength: 3),
              runs: [.init(firstPage: 0, pageCount: 1, isInherited: true), .init(firstPage: 1, pageCount: 1),
                     .init(firstPage: 2, pageCount: 2, isInherited: true)], key: key)
    }

    /// Follows the chain from `bytes` through `files` (name → bytes), as the launcher does through a directory.
    static func load(_ bytes: [UInt8], files: [String: [UInt8]]) throws -> ImageChain<ByteArraySource> {
        var chain = ImageChain(try Image.decode(from: ByteArraySource(bytes)), source: ByteArraySource(bytes))
        while let wanted = chain.wantedParent {
            let file = try #require(files[wanted.name])
            try chain.append(parent: try Image.decode(from: ByteArraySource(file)), source: ByteArraySource(file))
        }
        return chain
    }

    static var files: [String: [UInt8]] { ["a.img": a, "b.img": b] }
}

@Suite struct ImageChainTests {
    @Test func followsParentsToTheFullImage() throws {
        let chain = try ChainFixture.load(ChainFixture.c(), files: ChainFixture.files)
        #expect(chain.members.map(\.image.header.sequence) == [3, 2, 1])
        #expect(chain.isIncremental)
        #expect(chain.wantedParent == nil)
    }

    @Test func resolvesEachInheritedPageToTheNearestImageThatStoresIt() throws {
        let chain = try ChainFixture.load(ChainFixture.c(), files: ChainFixture.files)
        let segments = try chain.resolveInheritedPages()
        let b = chain.members[1].image.memoryAreas[1], a = chain.members[2].image.memoryAreas[1]
        let page = UInt64(ChainFixture.page)
        #expect(segments.map(\.address) == [ChainFixture.areaStart, ChainFixture.areaStart + 2 * page])
        #expect(segments.map(\.bytes) == [page, 2 * page])
        #expect(segments.map(\.image) == [0, 1])  // b, then a
        #expect(segments.map(\.file_offset) == [b.dataOffset, a.dataOffset + 2 * page])
        let contributing = chain.contributingAreas(segments)
        #expect(contributing.map(\.member) == [1, 2])
        #expect(contributing.map(\.area.start) == [ChainFixture.areaStart, ChainFixture.areaStart])
    }

    @Test func refusesAnImageThatIsNotTheNamedParent() throws {
        let c = ChainFixture.c()
        var chain = ImageChain(try Image.decode(from: ByteArraySource(c)), source: ByteArraySource(c))
        let impostor = ChainFixture.a  // sequence 1 where 2 is named
        #expect(throws: ChainError.notTheParent(child: 0)) {
            try chain.append(parent: try Image.decode(from: ByteArraySource(impostor)), source: ByteArraySource(impostor))
        }
    }

    @Test func anIncompleteChainCannotBeResolved() throws {
        let c = ChainFixture.c(), b = ChainFixture.b
        var chain = ImageChain(try Image.decode(from: ByteArraySource(c)), source: ByteArraySource(c))
        try chain.append(parent: try Image.decode(from: ByteArraySource(b)), source: ByteArraySource(b))
        #expect(throws: ChainError.inheritsWithoutParent(member: 1)) { try chain.resolveInheritedPages() }
    }
}
