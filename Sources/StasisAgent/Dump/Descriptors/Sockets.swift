// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// SOCKET_LISTEN and SOCKET_RESET: a socket's identity and options, a UNIX socket's peer and what
/// waits to be read on it (left in place), a TCP listener's backlog.
extension FileDescriptorDumper {
    /// Listening sockets are re-created; any other socket comes back with its peer gone (or, a UNIX
    /// socket whose peer the program holds too, as a socketpair). Returns the extra bytes.
    @_noAllocation @_noLocks
    mutating func captureSocket(_ fd: Int32, _ st: stasis_kstat_t, into record: inout stasis_file_descriptor_record_t)
        throws(FreezeFailure) -> Int
    {
        var extraBytes = captureSocketState(fd)
        record.object_id = st.st_ino
        let listening = socketIsListening(fd)
        record.kind = UInt32(listening ? STASIS_FD_SOCKET_LISTEN : STASIS_FD_SOCKET_RESET)
        let state = extraBuffer.assumingMemoryBound(to: stasis_socket_state_t.self)
        if listening && (state.pointee.domain == 2 || state.pointee.domain == 10) /* AF_INET, AF_INET6 */ {
            let backlog = tcpListenBacklog(fd)  // 0 for anything but TCP
            if backlog > 0 {
                extraBuffer.storeBytes(of: backlog, toByteOffset: extraBytes, as: UInt32.self)
                extraBytes += 4
            }
        }
        if !listening && state.pointee.domain == 1 /* AF_UNIX */ {
            state.pointee.peer_inode = try unixPeer(of: UInt32(truncatingIfNeeded: st.st_ino))
            if state.pointee.type == 1 /* SOCK_STREAM */ { extraBytes += peekQueued(fd, at: extraBytes) }
            if state.pointee.type == 2 /* SOCK_DGRAM */ { extraBytes += peekDatagrams(fd, at: extraBytes) }
        }
        return extraBytes
    }

    /// stasis_socket_state_t into extraBuffer; returns its size.
    @_noAllocation @_noLocks
    func captureSocketState(_ fd: Int32) -> Int {
        let state = extraBuffer.assumingMemoryBound(to: stasis_socket_state_t.self)
        state.pointee = stasis_socket_state_t()
        state.pointee.domain = socketOption(fd, 39 /* SO_DOMAIN */)
        state.pointee.type = socketOption(fd, 3 /* SO_TYPE */)
        state.pointee.protocol = socketOption(fd, 38 /* SO_PROTOCOL */)
        var options: UInt32 = 0
        if socketOption(fd, 2 /* SO_REUSEADDR */) != 0 { options |= UInt32(STASIS_SOCKET_REUSEADDR) }
        if socketOption(fd, 15 /* SO_REUSEPORT */) != 0 { options |= UInt32(STASIS_SOCKET_REUSEPORT) }
        if socketOption(fd, 9 /* SO_KEEPALIVE */) != 0 { options |= UInt32(STASIS_SOCKET_KEEPALIVE) }
        state.pointee.options = options
        state.pointee.receive_buffer = socketOption(fd, 8 /* SO_RCVBUF */)
        state.pointee.send_buffer = socketOption(fd, 7 /* SO_SNDBUF */)
        var length: UInt32 = 128
        let r = withUnsafeMutablePointer(to: &length) { l in
            RawSyscall.call(STASIS_NR_getsockname, Int(fd), Int(bitPattern: extraBuffer + 32), Int(bitPattern: l))
        }
        state.pointee.address_bytes = r == 0 ? min(length, 128) : 0
        return MemoryLayout<stasis_socket_state_t>.size
    }

    @_noAllocation @_noLocks
    func socketOption(_ fd: Int32, _ name: Int) -> Int32 {
        var value: Int32 = 0
        return getSocketOption(fd, level: 1 /* SOL_SOCKET */, name, into: &value, size: 4) ? value : 0
    }

    /// getsockopt(2) into the `size` bytes at `value`, which the kernel must fill whole; false on failure.
    @_noAllocation @_noLocks
    func getSocketOption(_ fd: Int32, level: Int, _ name: Int, into value: UnsafeMutableRawPointer, size: Int) -> Bool {
        var length = UInt32(size)
        let r = withUnsafeMutablePointer(to: &length) { l in
            RawSyscall.call(STASIS_NR_getsockopt, Int(fd), level, name, Int(bitPattern: value), Int(bitPattern: l))
        }
        return r == 0 && length == UInt32(size)
    }

    @_noAllocation @_noLocks
    func socketIsListening(_ fd: Int32) -> Bool { socketOption(fd, 30 /* SO_ACCEPTCONN */) != 0 }

    /// The bytes waiting to be read on a stream socket, left in place (MSG_PEEK), after `offset`.
    @_noAllocation @_noLocks
    func peekQueued(_ fd: Int32, at offset: Int) -> Int {
        let n = RawSyscall.call(STASIS_NR_recvfrom, Int(fd), Int(bitPattern: extraBuffer + offset), Self.extraCapacity - offset,
                                0x2 | 0x40 /* MSG_PEEK | MSG_DONTWAIT */, 0, 0)
        return n > 0 ? n : 0
    }

    /// A TCP listener's backlog (0 if unknown): TCP_INFO reports sk_max_ack_backlog in tcpi_sacked (byte 28) for a
    /// listening socket.
    @_noAllocation @_noLocks
    func tcpListenBacklog(_ fd: Int32) -> UInt32 {
        var info: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // the first 32 bytes of struct tcp_info
        guard getSocketOption(fd, level: 6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, into: &info, size: 32) else { return 0 }  // 0: not known
        return UInt32(truncatingIfNeeded: info.3 &>> 32)
    }

    /// The datagrams waiting on a UNIX datagram socket, each as a 4-byte length and its bytes, left in
    /// place: with SO_PEEK_OFF set, each MSG_PEEK returns the next one. The program's own peek offset
    /// is put back. Stops early (the rest are lost) only if they do not fit in the record.
    @_noAllocation @_noLocks
    func peekDatagrams(_ fd: Int32, at offset: Int) -> Int {
        var previous: Int32 = -1
        guard getSocketOption(fd, level: 1 /* SOL_SOCKET */, 42 /* SO_PEEK_OFF */, into: &previous, size: 4), setPeekOffset(fd, 0)
        else { return 0 }
        var used = 0
        while offset + used + 4 <= Self.extraCapacity {
            let space = Self.extraCapacity - offset - used - 4
            let n = RawSyscall.call(STASIS_NR_recvfrom, Int(fd), Int(bitPattern: extraBuffer + offset + used + 4), space,
                                    0x2 | 0x40 | 0x20 /* MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC */, 0, 0)
            guard n >= 0, n <= space else { break }  // queue empty, or this one does not fit
            extraBuffer.storeBytes(of: UInt32(n), toByteOffset: offset + used, as: UInt32.self)
            used += 4 + n
        }
        _ = setPeekOffset(fd, previous)
        return used
    }

    @_noAllocation @_noLocks
    func setPeekOffset(_ fd: Int32, _ value: Int32) -> Bool {
        var v = value
        return withUnsafeMutablePointer(to: &v) { p in
            RawSyscall.call(STASIS_NR_setsockopt, Int(fd), 1 /* SOL_SOCKET */, 42 /* SO_PEEK_OFF */, Int(bitPattern: p), 4)
        } == 0
    }

    /// The peer of a UNIX socket, from NETLINK_SOCK_DIAG (UNIX_DIAG_PEER); the table of every UNIX
    /// socket's peer is read once per checkpoint.
    @_noAllocation @_noLocks
    mutating func unixPeer(of inode: UInt32) throws(FreezeFailure) -> UInt32 {
        if peerCount < 0 { try loadUnixPeers() }
        for i in 0..<max(peerCount, 0) where peerTable[2 * i] == inode { return peerTable[2 * i + 1] }
        return 0
    }

    @_noAllocation @_noLocks
    mutating func loadUnixPeers() throws(FreezeFailure) {
        peerCount = 0
        let fd = RawSyscall.call(STASIS_NR_socket, 16 /* AF_NETLINK */, 2 | 0o2000000 /* SOCK_DGRAM | CLOEXEC */, 4 /* NETLINK_SOCK_DIAG */)
        if fd < 0 { return }  // no sock_diag: no pairs, every UNIX socket comes back with its peer gone
        defer { RawSyscall.close(Int32(fd)) }
        // nlmsghdr (16) + unix_diag_req (24): SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, AF_UNIX,
        // every state, UDIAG_SHOW_PEER.
        let request = infoBuffer
        for i in 0..<40 { request.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        request.storeBytes(of: UInt32(40), toByteOffset: 0, as: UInt32.self)
        request.storeBytes(of: UInt16(20), toByteOffset: 4, as: UInt16.self)
        request.storeBytes(of: UInt16(0x301), toByteOffset: 6, as: UInt16.self)
        request.storeBytes(of: UInt8(1), toByteOffset: 16, as: UInt8.self)
        request.storeBytes(of: UInt32.max, toByteOffset: 20, as: UInt32.self)
        request.storeBytes(of: UInt32(4), toByteOffset: 28, as: UInt32.self)
        if RawSyscall.call(STASIS_NR_sendto, fd, Int(bitPattern: request), 40, 0, 0, 0) != 40 { return }
        while true {
            let n = RawSyscall.call(STASIS_NR_recvfrom, fd, Int(bitPattern: infoBuffer), Self.infoCapacity, 0, 0, 0)
            if n == -RawErrno.interrupted { continue }
            if n <= 0 { return }
            var offset = 0
            while offset + 16 <= n {
                let length = Int(infoBuffer.load(fromByteOffset: offset, as: UInt32.self))
                let type = infoBuffer.load(fromByteOffset: offset + 4, as: UInt16.self)
                if type == 3 /* NLMSG_DONE */ || type == 2 /* NLMSG_ERROR */ { return }
                guard length >= 16 + 16, offset + length <= n else { return }
                let inode = infoBuffer.load(fromByteOffset: offset + 16 + 4, as: UInt32.self)
                var attribute = offset + 16 + 16
                while attribute + 4 <= offset + length {
                    let attributeLength = Int(infoBuffer.load(fromByteOffset: attribute, as: UInt16.self))
                    let attributeType = infoBuffer.load(fromByteOffset: attribute + 2, as: UInt16.self)
                    guard attributeLength >= 4 else { break }
                    if attributeType == 2 /* UNIX_DIAG_PEER */, attributeLength >= 8, peerCount < Self.peerCapacity {
                        peerTable[2 * peerCount] = inode
                        peerTable[2 * peerCount + 1] = infoBuffer.load(fromByteOffset: attribute + 4, as: UInt32.self)
                        peerCount += 1
                    }
                    attribute += (attributeLength + 3) & ~3
                }
                offset += (length + 3) & ~3
            }
        }
    }
}
