/// PIPE and FIFO: one pipe or named FIFO, the same for each of its ends. The first record of each
/// carries the bytes buffered in it when the program reads it (copied with tee(2), not consumed).
public struct PipePayload: DescriptorPayloadCoding {
    /// The pipe's (FIFO's) inode, shared by its ends: one pipe is made per inode at restart.
    public var inode: UInt64
    /// PIPE: F_GETPIPE_SZ (0: the default). FIFO: 0.
    public var bufferSize: UInt32
    /// At most 1 MiB (the largest pipe an ordinary user may make).
    public var queued: [UInt8]

    public init(inode: UInt64, bufferSize: UInt32 = 0, queued: [UInt8] = []) {
        self.inode = inode
        self.bufferSize = bufferSize
        self.queued = queued
    }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        self.init(inode: fields.objectID, bufferSize: fields.objectFlags, queued: fields.extra)
    }

    var fields: DescriptorFields { DescriptorFields(objectID: inode, objectFlags: bufferSize, extra: queued) }
}
