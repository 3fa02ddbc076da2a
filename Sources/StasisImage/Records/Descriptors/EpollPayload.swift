/// EPOLL: the extra bytes are one stasis_epoll_entry_t (16 bytes) per registration.
public struct EpollPayload: DescriptorPayloadCoding {
    /// One registration of an epoll instance (stasis_epoll_entry_t).
    public struct Entry: Equatable, Sendable {
        public var fd: Int32
        public var events: UInt32
        public var data: UInt64

        public init(fd: Int32, events: UInt32, data: UInt64) {
            self.fd = fd
            self.events = events
            self.data = data
        }
    }

    public static let entrySize = 16
    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        guard fields.extra.count % Self.entrySize == 0 else {
            throw context.invalid("\(fields.extra.count) bytes of epoll entries (not a multiple of 16)")
        }
        var reader = ByteReader(fields.extra, base: context.at)
        var entries: [Entry] = []
        while reader.remaining > 0 {
            entries.append(Entry(fd: try reader.read(Int32.self), events: try reader.read(UInt32.self),
                                 data: try reader.read(UInt64.self)))
        }
        self.init(entries: entries)
    }

    var fields: DescriptorFields {
        var writer = ByteWriter()
        for entry in entries { writer.write(entry.fd); writer.write(entry.events); writer.write(entry.data) }
        return DescriptorFields(extra: writer.bytes)
    }
}
