/// SOCKET_LISTEN and SOCKET_RESET: object_id = the socket's inode; the extra bytes are
/// stasis_socket_state_t (160 bytes), then what the kind adds:
///
///     SOCKET_LISTEN   TCP: u32 backlog (absent when unknown)
///     SOCKET_RESET    UNIX stream: the bytes waiting to be read
///                     UNIX datagram: the messages waiting, each as u32 length + bytes
public struct SocketPayload: DescriptorPayloadCoding {
    public static let stateSize = 160
    public static let addressCapacity = 128

    public var inode: UInt64
    public var domain: Int32 = 0, type: Int32 = 0, socketProtocol: Int32 = 0
    /// STASIS_SOCKET_* bits.
    public var options: UInt32 = 0
    public var receiveBuffer: Int32 = 0, sendBuffer: Int32 = 0
    /// getsockname, at most 128 bytes.
    public var address: [UInt8] = []
    /// AF_UNIX: the peer's inode (0: none); a peer that is another record's inode makes a socketpair.
    public var peerInode: UInt32 = 0
    /// A TCP listener's backlog; nil when the image does not have it (restart then uses SOMAXCONN).
    public var listenBacklog: Int32?
    /// What was waiting to be read on this end: a stream's bytes, or (SOCK_DGRAM) one element per message.
    public var queued: Queued = .none

    public enum Queued: Equatable, Sendable {
        case none
        case bytes([UInt8])
        case datagrams([[UInt8]])
    }

    public init(inode: UInt64) { self.inode = inode }

    /// SOCK_DGRAM, whose queue is kept as messages.
    static let datagramType: Int32 = 2

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        try self.init(fields, context, isListening: false)
    }

    init(_ fields: DescriptorFields, _ context: PayloadContext, isListening: Bool) throws(ImageError) {
        let extra = fields.extra
        guard extra.count >= Self.stateSize, !isListening || extra.count == Self.stateSize || extra.count == Self.stateSize + 4
        else { throw context.invalid("\(extra.count) bytes of socket state") }
        inode = fields.objectID
        var reader = ByteReader(extra, base: context.at)
        domain = try reader.read(Int32.self)
        type = try reader.read(Int32.self)
        socketProtocol = try reader.read(Int32.self)
        options = try reader.read(UInt32.self)
        receiveBuffer = try reader.read(Int32.self)
        sendBuffer = try reader.read(Int32.self)
        let addressBytes = try reader.read(UInt32.self)
        peerInode = try reader.read(UInt32.self)
        guard addressBytes <= UInt32(Self.addressCapacity) else { throw context.invalid("socket address of \(addressBytes) bytes") }
        address = Array(try reader.readBytes(Self.addressCapacity).prefix(Int(addressBytes)))
        if isListening {
            if reader.remaining == 4 {
                let backlog = try reader.read(UInt32.self)
                guard backlog <= UInt32(Int32.max) else { throw context.invalid("listen backlog \(backlog)") }
                listenBacklog = Int32(backlog)
            }
        } else if type == Self.datagramType {
            var messages: [[UInt8]] = []
            while reader.remaining > 0 {
                guard reader.remaining >= 4 else { throw context.invalid("queued datagrams do not add up") }
                let length = try reader.read(UInt32.self)
                guard Int(length) <= reader.remaining else { throw context.invalid("queued datagrams do not add up") }
                messages.append(try reader.readBytes(Int(length)))
            }
            queued = messages.isEmpty ? .none : .datagrams(messages)
        } else if reader.remaining > 0 {
            queued = .bytes(try reader.readBytes(reader.remaining))
        }
    }

    var fields: DescriptorFields {
        var writer = ByteWriter()
        writer.write(domain); writer.write(type); writer.write(socketProtocol); writer.write(options)
        writer.write(receiveBuffer); writer.write(sendBuffer)
        let addressBytes = min(address.count, Self.addressCapacity)
        writer.write(UInt32(addressBytes)); writer.write(peerInode)
        writer.write(bytes: Array(address.prefix(addressBytes)))
        writer.write(bytes: [UInt8](repeating: 0, count: Self.addressCapacity - addressBytes))
        if let listenBacklog { writer.write(UInt32(bitPattern: listenBacklog)) }
        switch queued {
        case .none: break
        case .bytes(let bytes): writer.write(bytes: bytes)
        case .datagrams(let messages):
            for message in messages { writer.write(UInt32(message.count)); writer.write(bytes: message) }
        }
        return DescriptorFields(objectID: inode, extra: writer.bytes)
    }
}
