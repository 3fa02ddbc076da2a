import CStasisABI
import Glibc
import StasisImage
import StasisSystem

/// The launcher's chains are of image files. Following PARENT records, checking each parent is the
/// one named and resolving inherited pages are StasisImage's (ImageChain.swift); here: finding the
/// parents beside the image, and turning failures into exit codes with file names.
typealias ImageChain = StasisImage.ImageChain<FileImageSource>

extension StasisImage.ImageChain where Source == FileImageSource {
    /// Follows PARENT records from `image` (at `source`) through `image`'s directory; `check` runs
    /// on each parent as it is added (ownership, signature).
    static func load(_ image: Image, source: FileImageSource,
                     check: (Image, FileImageSource) throws(LauncherError) -> Void = { _, _ throws(LauncherError) in })
        throws(LauncherError) -> ImageChain
    {
        var chain = ImageChain(image, source: source)
        let directory = directoryName(of: source.path)
        while let parent = chain.wantedParent {
            let path = directory + "/" + parent.name
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw LauncherError(.incompleteChain,
                                    "\(source.path) is incremental and its parent \(path) is missing; restart needs every image of its chain")
            }
            let parentSource = try FileImageSource(path: path)
            let decoded = try parentSource.decode()
            do {
                try chain.append(parent: decoded, source: parentSource)
            } catch {
                throw chain.launcherError(error, parentPath: path)
            }
            try check(decoded, parentSource)
        }
        return chain
    }

    static func directoryName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `resolveInheritedPages`, its failure named by file.
    func pageSegments() throws(LauncherError) -> [stasis_page_segment_t] {
        do { return try resolveInheritedPages() } catch { throw launcherError(error) }
    }

    private func launcherError(_ error: ChainError, parentPath: String = "") -> LauncherError {
        switch error {
        case .tooLong(let limit):
            return LauncherError(.incompleteChain, "\(members[0].source.path): the chain is longer than \(limit) images")
        case .notTheParent(let child):
            return LauncherError(.incompleteChain,
                                 "\(parentPath) is not the parent \(child == 0 ? members[0].source.path : "its child") was taken from (another checkpoint by that name?)")
        case .inheritsWithoutParent(let member):
            return LauncherError(.badImage, "\(members[member].source.path) inherits pages but has no parent")
        }
    }
}
