import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// SOCKET_LISTEN and SOCKET_RESET: listeners listen again on their address; a UNIX socket whose peer
/// the program also held comes back as a socketpair with what each end had waiting; any other socket
/// comes back with its peer gone.
extension FileDescriptorPlan {
    mutating func listener(_ record: FileDescriptorRecord, _ socket: SocketPayload) throws(LauncherError) -> FileDescriptor {
        guard !socket.address.isEmpty else {
            throw LauncherError(.restoreFailed, "fd \(record.fd): a listening socket without an address")
        }
        let fd = socket.address.withUnsafeBytes { address in
            stasis_make_listener(socket.domain, socket.type, socket.socketProtocol, socket.options, address.baseAddress!,
                                 UInt32(address.count), socket.receiveBuffer, socket.sendBuffer, socket.listenBacklog ?? 0)
        }
        guard fd >= 0 else {
            throw LauncherError(.restoreFailed, "fd \(record.fd): cannot listen again on the saved address: \(Errno(rawValue: -fd)); is it in use?")
        }
        try setStatusFlags(FileDescriptor(rawValue: fd), record)
        return try keep(FileDescriptor(rawValue: fd), record)
    }

    mutating func resetSocket(_ record: FileDescriptorRecord, _ socket: SocketPayload) throws(LauncherError) -> FileDescriptor {
        // Both ends in the image: a socketpair again, with what each end had waiting.
        if socket.domain == AF_UNIX, socket.peerInode != 0, let peer = shared.socketPeers[UInt64(socket.peerInode)] {
            let source = try socketPair(record, socket, peer: peer)
            try setStatusFlags(source, record)
            return source
        }
        let fd = stasis_make_reset_socket(socket.domain, socket.type, socket.socketProtocol)
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot make a socket: \(Errno(rawValue: -fd))") }
        try setStatusFlags(FileDescriptor(rawValue: fd), record)
        return try keep(FileDescriptor(rawValue: fd), record)
    }

    /// The new end for this record's inode, creating the pair (and refilling both directions) the first
    /// time either end is met.
    private mutating func socketPair(_ record: FileDescriptorRecord, _ socket: SocketPayload,
                                     peer: (record: FileDescriptorRecord, socket: SocketPayload)) throws(LauncherError)
        -> FileDescriptor
    {
        if let end = shared.socketEnds[socket.inode] { return end }
        var ends: [Int32] = [0, 0]
        let result = ends.withUnsafeMutableBufferPointer { stasis_make_socketpair(socket.type, $0.baseAddress!) }
        guard result == 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate a socket pair: \(Errno(rawValue: -result))") }
        let mine = try keep(FileDescriptor(rawValue: ends[0]), record)
        let theirs = try keep(FileDescriptor(rawValue: ends[1]), peer.record)
        shared.socketEnds[socket.inode] = mine
        shared.socketEnds[peer.socket.inode] = theirs
        // What was waiting to be read on an end is sent again through the other one.
        do {
            try refill(through: theirs, socket.queued)
            try refill(through: mine, peer.socket.queued)
        } catch {
            throw LauncherError(.restoreFailed, "fd \(record.fd): cannot refill the socket pair: \(error)")
        }
        return mine
    }

    /// Sends what was queued for reading on one end through the other: a stream's bytes as they are, a
    /// datagram socket's as the messages they were.
    private func refill(through end: FileDescriptor, _ queued: SocketPayload.Queued) throws(Errno) {
        switch queued {
        case .none: break
        case .bytes(let bytes): try end.writeAll(bytes)
        case .datagrams(let messages): for message in messages { try end.send(message: message) }
        }
    }
}
