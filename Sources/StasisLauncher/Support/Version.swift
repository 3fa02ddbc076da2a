import StasisImage

/// The release of Stasis, written here only: `stasis --version` prints it, and Scripts/package.sh names
/// its tarball after what the packaged `stasis --version` prints.
public enum StasisVersion {
    public static let release = "0.1"

    /// `stasis --version`: the release, the image format version the agent writes (the one
    /// `stasis_image_abi.h` defines) and the versions `restart`, `inspect` and `verify` read.
    static var line: String {
        let readable = ImageHeader.readableVersions
        let formats = "image format \(ImageHeader.currentVersion); reads \(readable.lowerBound)-\(readable.upperBound)"
        return "stasis \(release) (\(formats))"
    }
}
