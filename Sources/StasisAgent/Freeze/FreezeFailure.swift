// FREEZE WINDOW: see RawSyscall.swift.

/// Why a checkpoint failed: the step, the errno and the object (an fd or an address), for one line of text.
struct FreezeFailure: Error {
    enum Step: UInt8 {
        case openImage, writeImage, syncImage, renameImage, readProc, scanPages, unsupportedFile, arenaExhausted,
            readRequest, tooManyRuns, threadsDidNotStop, tooManyThreads, signalThread, readPipe, readDeletedFile, deletedFileTooLarge, sysvSharedMemory, stillPagingIn,
            checkpointInProgress,
            // process trees (Checkpoint/Tree): `object` is a PID unless said otherwise
            treeControl, treeTooLarge, treeProcessDidNotStop, treeNoAgent, treeTraced, treeStopped,
            treeSessionLeaderGone, treeTooManyDescriptors, treeWriterDied, treeProcessExited,
            /// `object` is the member's index: its own message is in the control block.
            treeMemberFailed,
            /// A member told to stop: the root reports why.
            treeAborted
    }
    var step: Step
    var errno: Int
    var object: Int = -1
}
