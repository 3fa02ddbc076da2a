/// Why an image cannot be used. Each case names the problem for a one-line message.
public enum ImageError: Error, Equatable, CustomStringConvertible, Sendable {
    case notAnImage
    case unsupportedVersion(UInt32)
    case foreignArchitecture(UInt32)
    case truncated(at: UInt64)
    /// The file has no bytes at all (a checkpoint that never wrote, a failed copy).
    case empty
    case invalidHeader(String)
    case invalidRecord(RecordKind?, at: UInt64, reason: String)
    case missingRecord(String)
    case checksumMismatch(String)
    case signature(String)
    /// A tree checkpoint whose member images do not agree with its manifest (TreeMembers.swift).
    case invalidTree(String)
    case io(String)

    public var description: String {
        switch self {
        case .notAnImage: return "not a Stasis image (bad magic)"
        case .unsupportedVersion(let v):
            return "image format version \(v) is not supported by this stasis (it reads versions \(ImageHeader.readableVersions.lowerBound)-\(ImageHeader.readableVersions.upperBound))"
        case .foreignArchitecture(let a): return "image is for another architecture (ELF machine \(a)); this is x86-64"
        case .truncated(let at): return "image is truncated (ends before byte \(at)); it was not completely written"
        case .empty: return "image file is empty (0 bytes); it was never written, or a copy of it failed"
        case .invalidHeader(let why): return "corrupt image header: \(why)"
        case .invalidRecord(let kind, let at, let why):
            return "corrupt image: \(kind.map { "\($0)" } ?? "record") at byte \(at): \(why)"
        case .missingRecord(let what): return "incomplete image: no \(what) record"
        case .checksumMismatch(let what): return "corrupt image: checksum mismatch in \(what)"
        case .signature(let why): return "signature check failed: \(why)"
        case .invalidTree(let why): return "corrupt tree checkpoint: \(why)"
        case .io(let what): return what
        }
    }
}
