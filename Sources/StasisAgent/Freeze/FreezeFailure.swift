// FREEZE WINDOW: see RawSyscall.swift.

/// Why a checkpoint failed: the step, the errno and the object (an fd or an address), for one line of text.
struct FreezeFailure: Error {
    enum Step: UInt8 {
        case openImage, writeImage, syncImage, renameImage, readProc, scanPages, unsupportedFile, arenaExhausted,
            readRequest, tooManyRuns, threadsDidNotStop, tooManyThreads, signalThread, readPipe, readDeletedFile, deletedFileTooLarge, sysvSharedMemory, stillPagingIn,
            checkpointInProgress, hasChildren
    }
    var step: Step
    var errno: Int
    var object: Int = -1
}
