// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// A tree member's descriptors that are one open file description with an earlier member's (a pipe
// end, a file whose offset both move, a listening socket, an eventfd inherited through fork):
// SHARED_DESCRIPTION records, so that restart makes each such object once. Found with
// kcmp(KCMP_FILE) among the descriptors with the same device and inode, while every member is frozen.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    @_noAllocation @_noLocks
    func writeSharedDescriptions(_ image: inout ImageFile) throws(FreezeFailure) {
        guard let tree, memberIndex > 0 else { return }
        let mine = tree.descriptors(memberIndex)
        let myCount = Int(tree.member(memberIndex).pointee.descriptor_count)
        for k in 0..<myCount {
            let descriptor = mine[k]
            search: for other in 0..<memberIndex where tree.member(other).pointee.process.state != STASIS_TREE_ZOMBIE {
                let theirs = tree.descriptors(other)
                let owner = Int(tree.member(other).pointee.process.pid)
                for m in 0..<Int(tree.member(other).pointee.descriptor_count)
                where theirs[m].device == descriptor.device && theirs[m].inode == descriptor.inode {
                    let same = RawSyscall.call(STASIS_NR_kcmp, pid, owner, 0 /* KCMP_FILE */, Int(descriptor.fd), Int(theirs[m].fd))
                    // An error would leave two processes with two objects where they had one: refuse.
                    if same < 0 { throw FreezeFailure(step: .readProc, errno: -same, object: owner) }
                    guard same == 0 else { continue }
                    var record = stasis_shared_description_record_t(fd: descriptor.fd, owner_pid: Int32(truncatingIfNeeded: owner),
                                                                    owner_fd: theirs[m].fd, reserved: 0)
                    try image.writeRecord(kind: UInt32(STASIS_RECORD_SHARED_DESCRIPTION), fixed: &record,
                                          fixedBytes: MemoryLayout<stasis_shared_description_record_t>.size)
                    break search
                }
            }
        }
    }
}
