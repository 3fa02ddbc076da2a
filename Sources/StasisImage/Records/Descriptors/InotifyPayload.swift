/// INOTIFY: the extra bytes are one stasis_inotify_watch_t (160 bytes) per watch. Version 1 images
/// held the fdinfo text here instead; they are refused by version (IMAGE-FORMAT.md 8).
public struct InotifyPayload: DescriptorPayloadCoding {
    public static let watchSize = 160
    public static let handleCapacity = 128  // STASIS_INOTIFY_HANDLE_MAX

    /// One watch (stasis_inotify_watch_t).
    public struct Watch: Equatable, Sendable {
        public var descriptor: Int32
        public var mask: UInt32
        public var inode: UInt64 = 0
        /// The kernel's dev_t of the watched file's superblock: major << 20 | minor.
        public var device: UInt64 = 0
        public var handleType: Int32 = 0
        /// At most 128 bytes.
        public var handle: [UInt8] = []

        public init(descriptor: Int32, mask: UInt32, inode: UInt64 = 0, device: UInt64 = 0, handleType: Int32 = 0,
                    handle: [UInt8] = []) {
            self.descriptor = descriptor
            self.mask = mask
            self.inode = inode
            self.device = device
            self.handleType = handleType
            self.handle = handle
        }
    }

    /// In ascending watch descriptor order (the order restart re-adds them in), each descriptor once.
    public var watches: [Watch]

    public init(watches: [Watch]) { self.watches = watches.sorted { $0.descriptor < $1.descriptor } }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        guard fields.extra.count % Self.watchSize == 0 else {
            throw context.invalid("\(fields.extra.count) bytes of inotify watches (not a multiple of \(Self.watchSize))")
        }
        var reader = ByteReader(fields.extra, base: context.at)
        var watches: [Watch] = []
        while reader.remaining > 0 {
            var watch = Watch(descriptor: try reader.read(Int32.self), mask: try reader.read(UInt32.self))
            watch.inode = try reader.read(UInt64.self)
            watch.device = try reader.read(UInt64.self)
            watch.handleType = try reader.read(Int32.self)
            let handleBytes = try reader.read(UInt32.self)
            let handle = try reader.readBytes(Self.handleCapacity)
            guard watch.descriptor > 0 else { throw context.invalid("inotify watch descriptor \(watch.descriptor)") }
            guard handleBytes <= UInt32(Self.handleCapacity) else { throw context.invalid("inotify file handle of \(handleBytes) bytes") }
            watch.handle = Array(handle.prefix(Int(handleBytes)))
            watches.append(watch)
        }
        self.init(watches: watches)
        for i in self.watches.indices.dropFirst() where self.watches[i].descriptor == self.watches[i - 1].descriptor {
            throw context.invalid("inotify watch \(self.watches[i].descriptor) twice")
        }
    }

    var fields: DescriptorFields {
        var writer = ByteWriter()
        for watch in watches {
            writer.write(watch.descriptor); writer.write(watch.mask); writer.write(watch.inode); writer.write(watch.device)
            writer.write(watch.handleType)
            let handleBytes = min(watch.handle.count, Self.handleCapacity)
            writer.write(UInt32(handleBytes))
            writer.write(bytes: Array(watch.handle.prefix(handleBytes)))
            writer.write(bytes: [UInt8](repeating: 0, count: Self.handleCapacity - handleBytes))
        }
        return DescriptorFields(extra: writer.bytes)
    }
}
