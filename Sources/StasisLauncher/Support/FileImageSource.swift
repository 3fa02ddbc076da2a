import Glibc
import StasisImage
import StasisSystem

/// An image file as an `ImageSource`: headers and payloads by pread, never the page data.
final class FileImageSource: ImageSource {
    let descriptor: FileDescriptor
    let size: UInt64
    let path: String

    init(path: String) throws(LauncherError) {
        self.path = path
        do {
            descriptor = try FileDescriptor.open(path, O_RDONLY)
        } catch {
            throw LauncherError(.badImage, "cannot open image \(path): \(error)")
        }
        do {
            let st = try descriptor.status()
            guard st.st_mode & S_IFMT == S_IFREG else {
                descriptor.closeAfterError()
                throw LauncherError(.badImage, "\(path) is not a regular file")
            }
            size = UInt64(st.st_size)
        } catch let error as LauncherError {
            throw error
        } catch {
            descriptor.closeAfterError()
            throw LauncherError(.badImage, "cannot stat image \(path)")
        }
    }

    deinit { descriptor.closeAfterError() }  // read-only: a close error loses nothing, and deinit cannot report it

    /// Bytes read ahead for small requests: a record's header, then its payload, then the next small
    /// records cost one pread, not one each (60,000 areas: 120,000 preads fewer). Images are not
    /// changed in place once published (a compaction writes a new file), so the window stays true.
    private var window: [UInt8] = []
    private var windowOffset: UInt64 = 0
    static let windowBytes = 2048

    func bytes(at offset: UInt64, count: Int) throws(ImageError) -> [UInt8] {
        guard offset <= size, UInt64(count) <= size - offset else { throw .truncated(at: size) }
        guard count <= Self.windowBytes else { return try read(at: offset, count: count) }
        if offset < windowOffset || offset - windowOffset > UInt64(window.count)
            || UInt64(count) > UInt64(window.count) - (offset - windowOffset)
        {
            window = []  // a failed read leaves no stale window
            window = try read(at: offset, count: Int(min(UInt64(Self.windowBytes), size - offset)))
            windowOffset = offset
        }
        let start = Int(offset - windowOffset)
        return Array(window[start..<start + count])
    }

    private func read(at offset: UInt64, count: Int) throws(ImageError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n: Int
            do {
                n = try result.withUnsafeMutableBytes { (raw) throws(Errno) in
                    try descriptor.read(at: offset + UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]))
                }
            } catch {
                throw .io("cannot read image \(path): \(error)")
            }
            guard n > 0 else { throw .io("cannot read image \(path): unexpected end") }
            done += n
        }
        return result
    }

    /// Decodes and validates; every failure becomes a one-line `badImage` error.
    func decode() throws(LauncherError) -> Image {
        do {
            return try Image.decode(from: self)
        } catch {
            // A tree checkpoint's manifest (a header without threads) named instead of its directory.
            if let header = try? ImageHeader.decode(from: self), header.threadCount == 0 {  // unreadable: the decode error stands
                throw LauncherError(.badImage, "\(path) is the manifest of a tree checkpoint, not a process's image: "
                    + "name its directory, \(ImageChain.directoryName(of: path))")
            }
            throw LauncherError(.badImage, "\(path): \(error)")
        }
    }
}
