// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// A tree member's descriptors that are one open file description with an earlier member's (a pipe
// end, a file whose offset both move, a listening socket, an eventfd inherited through fork):
// SHARED_DESCRIPTION records, so that restart makes each such object once. Found with
// kcmp(KCMP_FILE) while every member is frozen: the earlier members' descriptors are sorted by
// description (DescriptionIndex.swift, O(n log n) kcmp calls, none between distinct inodes), then
// each of this member's is looked up by binary search. The owner is the earliest member holding the
// description, and its lowest-listed fd (the first in the sort, which ranks by member then list).
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    @_noAllocation @_noLocks
    func writeSharedDescriptions(_ image: inout ImageFile, arena: inout FreezeArena) throws(FreezeFailure) {
        guard let tree, memberIndex > 0 else { return }
        let myCount = Int(tree.member(memberIndex).pointee.descriptor_count)
        if myCount == 0 { return }
        var total = 0
        for other in 0..<memberIndex where tree.member(other).pointee.process.state != STASIS_TREE_ZOMBIE {
            total += Int(tree.member(other).pointee.descriptor_count)
        }
        if total == 0 { return }
        let mark = arena.mark
        defer { arena.reset(to: mark) }
        let stride = MemoryLayout<DescriptionEntry>.stride
        guard let sorted = arena.take(total * stride), let scratch = arena.take(total * stride) else {
            throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace)
        }
        let entries = sorted.assumingMemoryBound(to: DescriptionEntry.self)
        var count = 0
        for other in 0..<memberIndex where tree.member(other).pointee.process.state != STASIS_TREE_ZOMBIE {
            let theirs = tree.descriptors(other)
            let owner = Int32(truncatingIfNeeded: tree.member(other).pointee.process.pid)
            for m in 0..<Int(tree.member(other).pointee.descriptor_count) where count < total {
                entries[count] = DescriptionEntry(device: theirs[m].device, inode: theirs[m].inode, pid: owner,
                                                  fd: theirs[m].fd, rank: Int32(other), slot: Int32(m))
                count += 1
            }
        }
        // An error would leave two processes with two objects where they had one: strict, it throws.
        var order = DescriptionOrder(strict: true)
        try order.sort(entries, count: count, scratch: scratch.assumingMemoryBound(to: DescriptionEntry.self))
        let mine = tree.descriptors(memberIndex)
        let me = Int32(truncatingIfNeeded: pid)
        for k in 0..<myCount {
            let descriptor = mine[k]
            let key = DescriptionEntry(device: descriptor.device, inode: descriptor.inode, pid: me, fd: descriptor.fd,
                                       rank: Int32(memberIndex), slot: Int32(k))
            guard let found = try order.first(sameAs: key, in: entries, count: count) else { continue }
            var record = stasis_shared_description_record_t(fd: descriptor.fd, owner_pid: entries[found].pid,
                                                            owner_fd: entries[found].fd, reserved: 0)
            try image.writeRecord(kind: UInt32(STASIS_RECORD_SHARED_DESCRIPTION), fixed: &record,
                                  fixedBytes: MemoryLayout<stasis_shared_description_record_t>.size)
        }
    }
}
