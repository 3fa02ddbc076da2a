import StasisImage

/// A root (1000) with a running child (1001), whose child (1002) is a zombie.
public func sampleManifest() -> TreeManifest {
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

/// A tree checkpoint in memory: `sampleManifest()`'s processes with member images for the two live ones
/// (pid 1000, the root, and 1001; 1002 is a zombie), bound to the manifest by size and header CRC.
/// Both hold fd 3 (/tmp/shared.log); 1001's is the same description as 1000's (SHARED_DESCRIPTION).
public struct SampleTree {
    public var manifest: TreeManifest
    /// Member images by pid (file name `PID.stasis`).
    public var members: [Int32: [UInt8]]
    /// Signs the manifest (and, when built so, the members).
    public var key: [UInt8]?

    public init(key: [UInt8]? = nil) {
        self.key = key
        manifest = sampleManifest()
        var fd = FileDescriptorRecord()
        fd.fd = 3
        fd.path = "/tmp/shared.log"
        fd.statusFlags = 1  // O_WRONLY
        var w = ByteWriter()
        fd.encode(into: &w)
        let descriptor = w.bytes
        w = ByteWriter()
        SharedDescriptionRecord(fd: 3, ownerPID: 1000, ownerFD: 3).encode(into: &w)
        members = [
            1000: sampleImage(extra: [(.fileDescriptor, descriptor)], pid: 1000, key: key).bytes,
            1001: sampleImage(extra: [(.fileDescriptor, descriptor), (.sharedDescription, w.bytes)], pid: 1001, key: key).bytes,
        ]
        bind()
    }

    /// Records every member's size and header CRC in the manifest, as the agent does after writing them.
    public mutating func bind() {
        for (index, process) in manifest.processes.enumerated() {
            guard let bytes = members[process.pid], let header = try? ImageHeader.decode(from: ByteArraySource(bytes))
            else { continue }  // a zombie, or a member a test broke on purpose: left as it is
            manifest.processes[index].imageBytes = UInt64(bytes.count)
            manifest.processes[index].imageHeaderCRC = header.headerCRC
        }
    }

    /// The manifest file's bytes (signed with `key`).
    public var manifestBytes: [UInt8] { manifest.encode(key: key) }
}
