import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem
import Testing
@testable import StasisLauncher

/// What `stasis restart TREE_DIR` decides before any process exists: the layout of sessions, groups,
/// stand-ins and zombies (TreeLayout), descriptors shared across members (SHARED_DESCRIPTION, pipes
/// between processes), and the byte ranges of shared memory filled once.
struct TreeRestartPlanningTests {
    static func process(_ pid: Int32, parent: Int32, group: Int32, session: Int32, flags: TreeProcessRecord.Flags = [.ownSession],
                        state: TreeProcessRecord.State = .running, exitStatus: Int32 = 0) -> TreeProcessRecord {
        var p = TreeProcessRecord()
        p.pid = pid
        p.ppid = parent
        p.pgid = group
        p.sid = session
        p.flags = flags
        p.state = state
        p.exitStatus = exitStatus
        p.comm = "p\(pid)"
        p.imageBytes = state == .zombie ? 0 : 1
        return p
    }

    static func manifest(_ processes: [TreeProcessRecord]) -> TreeManifest {
        var m = TreeManifest()
        m.header.pid = processes[0].pid
        m.processes = processes
        return m
    }

    @Test func laysOutCreatorsGroupsSessionsZombiesAndStandIns() throws {
        let outer: Int32 = 900
        let layout = try TreeLayout(Self.manifest([
            Self.process(100, parent: 1, group: 100, session: outer, flags: [.root, .ownSession]),
            Self.process(101, parent: 100, group: 100, session: outer),                       // joins the root's group
            Self.process(102, parent: 100, group: 500, session: outer),                       // group 500's leader exited
            Self.process(103, parent: 102, group: 500, session: outer),
            Self.process(104, parent: 100, group: 104, session: 104, flags: []),              // its own session
            Self.process(105, parent: 104, group: 104, session: 104, flags: [], state: .zombie, exitStatus: 9),
            Self.process(106, parent: 101, group: 77, session: outer, flags: [.ownSession, .ownGroup]),
        ]))
        let m = layout.members
        #expect(m.map(\.pid) == [100, 101, 102, 103, 104, 105, 106, 500])
        #expect(m.map(\.creator) == [-1, 0, 0, 2, 0, 4, 1, 2])
        #expect(m.map(\.pgid) == [100, 100, 500, 500, 104, 104, nil, 500])
        #expect(m.map(\.newSession) == [false, false, false, false, true, false, false, false])
        #expect(m[5].kind == .zombie && m[5].exitStatus == 9 && m[5].name == "p105")
        #expect(m[7].kind == .standIn && m[7].process == nil)
        #expect(m[0].exitSignal == SIGCHLD, "restart waits for the root")
    }

    @Test func aGroupOfZombiesGetsItsStandInFromTheirParent() throws {
        let layout = try TreeLayout(Self.manifest([
            Self.process(100, parent: 1, group: 100, session: 9, flags: [.root, .ownSession]),
            Self.process(101, parent: 100, group: 300, session: 9, state: .zombie),
            Self.process(102, parent: 100, group: 400, session: 9, state: .zombie),
            Self.process(103, parent: 100, group: 400, session: 9),
        ]))
        #expect(layout.standIns.map(\.pid) == [300, 400])
        #expect(layout.standIns.map(\.creator) == [0, 3], "the zombie's parent; the live member of group 400")
    }

    @Test(arguments: [
        // A session leader outside the tree, not restart's session.
        ([process(100, parent: 1, group: 100, session: 100, flags: [.root]), process(101, parent: 100, group: 100, session: 55, flags: [])],
         "session leader 55 is not in the tree"),
        // The parent made a new session after the child was born: the child cannot be put back in the old one.
        ([process(100, parent: 1, group: 100, session: 100, flags: [.root]), process(101, parent: 100, group: 101, session: 7)],
         "stayed in the outer session"),
        // A group of another session.
        ([process(100, parent: 1, group: 100, session: 9, flags: [.root, .ownSession]),
          process(101, parent: 100, group: 101, session: 101, flags: []),
          process(102, parent: 100, group: 101, session: 9)],
         "of another session"),
        // restart's own group outside restart's session.
        ([process(100, parent: 1, group: 100, session: 100, flags: [.root]), process(101, parent: 100, group: 3, session: 100, flags: [.ownGroup])],
         "outside group"),
        // A session leader in another group.
        ([process(100, parent: 1, group: 4, session: 100, flags: [.root])], "leads session"),
    ] as [([TreeProcessRecord], String)])
    func refusesLayoutsItCannotMake(_ processes: [TreeProcessRecord], _ why: String) {
        do {
            _ = try TreeLayout(Self.manifest(processes))
            Issue.record("accepted")
        } catch {
            #expect(error.code == .restoreFailed && error.message.contains(why), "\(error.message)")
        }
    }

    @Test func fillsEachByteRangeOnce() {
        var ranges = PageRanges()
        #expect(ranges.insert(4096..<8192) == [4096..<8192])
        #expect(ranges.insert(0..<12288) == [0..<4096, 8192..<12288])
        #expect(ranges.insert(1000..<2000) == [])
        #expect(ranges.insert(16384..<20480) == [16384..<20480])
        #expect(ranges.insert(10000..<18000) == [12288..<16384])
        #expect(ranges.ranges == [0..<20480])
    }

    /// A pipe between two processes and a file description both hold: one pipe refilled once from the
    /// reader's record, one description for the shared fd.
    @Test func sharedDescriptionsAndPipesSpanMembers() throws {
        func pipeRecord(_ fd: Int32, inode: UInt64, reading: Bool, queued: [UInt8]) -> FileDescriptorRecord {
            var r = FileDescriptorRecord()
            r.fd = fd
            r.statusFlags = UInt32(reading ? O_RDONLY : O_WRONLY)
            r.inode = inode
            r.payload = .pipe(PipePayload(inode: inode, queued: queued))
            return r
        }
        var parent = Image()
        parent.header.pid = 100
        parent.fileDescriptors = [pipeRecord(3, inode: 77, reading: false, queued: []),  // writes to the child
                                  pipeRecord(4, inode: 88, reading: true, queued: [])]  // a pipe both read
        var child = Image()
        child.header.pid = 101
        child.fileDescriptors = [pipeRecord(5, inode: 77, reading: true, queued: Array("hello".utf8)),
                                 pipeRecord(6, inode: 88, reading: true, queued: Array("stale".utf8))]
        child.sharedDescriptions = [SharedDescriptionRecord(fd: 6, ownerPID: 100, ownerFD: 4)]

        let status = try FileDescriptor.pipe()
        defer { status.read.closeAfterError(); status.write.closeAfterError() }
        let base = max(FileDescriptorPlan.lowestSource(for: parent, extraDescriptors: 1),
                       FileDescriptorPlan.lowestSource(for: child, extraDescriptors: 1)) + 100
        let tree = TreeDescriptors(shared: SharedObjects(members: [parent, child]), base: base)
        let parentPlan = try FileDescriptorPlan(image: parent, imageFD: status.read, statusFD: status.write, tree: tree)
        let childPlan = try FileDescriptorPlan(image: child, imageFD: status.read, statusFD: status.write, tree: tree)
        defer { parentPlan.closeAll(); childPlan.closeAll() }
        func source(_ plan: FileDescriptorPlan, _ fd: Int32) -> Int32? { plan.moves.first { $0.target == fd }?.source }

        #expect(source(childPlan, 6) == source(parentPlan, 4), "the shared description is the owner's descriptor")
        #expect(source(parentPlan, 4)! >= base && source(childPlan, 5)! >= base)
        // The pipe between them: the parent's write end and the child's read end are one pipe, refilled
        // with the child's saved bytes although the parent's record came first.
        let readEnd = try #require(source(childPlan, 5))
        _ = fcntl(readEnd, F_SETFL, O_NONBLOCK)
        #expect(write(try #require(source(parentPlan, 3)), "!", 1) == 1)
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = read(readEnd, &buffer, 16)
        #expect(n == 6 && Array(buffer[0..<6]) == Array("hello!".utf8))
        // The shared pipe holds nothing: the owner's record had no bytes, the sharer's are not used.
        let shared = try #require(source(parentPlan, 4))
        _ = fcntl(shared, F_SETFL, O_NONBLOCK)
        #expect(read(shared, &buffer, 16) == -1)
    }

    @Test func aSharedDescriptionOfRestartsOwnStdioKeepsIt() throws {
        var owner = Image()
        owner.header.pid = 100
        var inherited = FileDescriptorRecord()
        inherited.fd = 1
        inherited.payload = .inherit
        owner.fileDescriptors = [inherited]
        var sharer = Image()
        sharer.header.pid = 101
        var same = inherited
        same.fd = 1
        var other = inherited
        other.fd = 7
        sharer.fileDescriptors = [same, other]
        sharer.sharedDescriptions = [SharedDescriptionRecord(fd: 1, ownerPID: 100, ownerFD: 1),
                                     SharedDescriptionRecord(fd: 7, ownerPID: 100, ownerFD: 1)]
        let status = try FileDescriptor.pipe()
        defer { status.read.closeAfterError(); status.write.closeAfterError() }
        let tree = TreeDescriptors(shared: SharedObjects(), base: 200)
        let first = try FileDescriptorPlan(image: owner, imageFD: status.read, statusFD: status.write, tree: tree)
        let second = try FileDescriptorPlan(image: sharer, imageFD: status.read, statusFD: status.write, tree: tree)
        defer { first.closeAll(); second.closeAll() }
        #expect(first.keepStdio == 2 && second.keepStdio == 2)
        let seven = try #require(second.moves.first { $0.target == 7 })
        var a = stat(), b = stat()
        #expect(fstat(seven.source, &a) == 0 && fstat(1, &b) == 0 && a.st_ino == b.st_ino, "fd 7 is restart's fd 1")
    }

    @Test func aSharedDescriptionOfAnUnknownDescriptorIsABadImage() throws {
        var sharer = Image()
        sharer.header.pid = 101
        var record = FileDescriptorRecord()
        record.fd = 3
        record.payload = .inherit
        sharer.fileDescriptors = [record]
        sharer.sharedDescriptions = [SharedDescriptionRecord(fd: 3, ownerPID: 100, ownerFD: 9)]
        let status = try FileDescriptor.pipe()
        defer { status.read.closeAfterError(); status.write.closeAfterError() }
        do {
            _ = try FileDescriptorPlan(image: sharer, imageFD: status.read, statusFD: status.write,
                                       tree: TreeDescriptors(shared: SharedObjects(), base: 200))
            Issue.record("accepted")
        } catch {
            #expect(error.code == .badImage)
        }
    }
}
