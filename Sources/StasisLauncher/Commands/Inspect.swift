import Glibc
import StasisImage

/// `stasis inspect IMAGE`: what an image holds, for people (text) or scripts (--json). A tree
/// checkpoint (a directory) is shown by Inspect+Tree.swift: its processes, then each member as here.
enum InspectCommand {
    static let help = """
        usage: stasis inspect [--json] IMAGE|TREE_DIR

        Prints the header, CPU features, threads with their registers, the memory map with the bytes
        stored per area, file descriptors and signal dispositions. The image is validated first.
        A tree checkpoint (a COMM-PID-SEQ.stasis directory) is shown as its processes (PID, parent,
        group, session, state, command), then each process's image as above.
        """

    static func main(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: [], flags: ["--help", "--json"], command: "inspect")
        if options.flags.contains("--help") {
            printOut(help)
            return
        }
        guard options.positional.count == 1 else { throw LauncherError(.usage, "inspect needs one IMAGE") }
        printOut(try render(options.positional[0], json: options.flags.contains("--json")))
    }

    /// What `inspect PATH` prints: one image, or a tree checkpoint when PATH is a directory.
    static func render(_ path: String, json asJSON: Bool) throws(LauncherError) -> String {
        if TreeDirectory.isDirectory(path) { return try renderTree(TreeDirectory(path: path), json: asJSON) }
        let source = try FileImageSource(path: path)
        let image = try source.decode()
        return asJSON ? json(image, size: source.size) : text(image, size: source.size)
    }

    static func hex(_ v: UInt64, width: Int = 0) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    static func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }

    static func protection(_ area: MemoryAreaRecord) -> String {
        (area.protection & 1 != 0 ? "r" : "-") + (area.protection & 2 != 0 ? "w" : "-")
            + (area.protection & 4 != 0 ? "x" : "-") + (area.flags.contains(.shared) ? "s" : "p")
    }

    static func features(_ xcr0: UInt64) -> String {
        MachineCheck.featureNames.filter { xcr0 & $0.0 != 0 }.map(\.1).joined(separator: ", ")
    }

    static func text(_ image: Image, size: UInt64) -> String {
        let h = image.header
        var out = """
            image:      format \(h.version), x86-64, page size \(h.pageSize), \(size) bytes\(image.signature == nil ? "" : ", signed (HMAC-SHA256; `stasis verify --key FILE` checks it)")
            program:    \(h.program)
            pid:        \(h.pid) (uid \(h.uid)), checkpoint #\(h.sequence), taken at \(formatTime(Int64(clamping: h.timeNanoseconds)))
            kernel:     \(h.kernelRelease)
            cpu:        XCR0 0x\(hex(h.xcr0)) (\(features(h.xcr0))), xsave \(h.xsaveSize) bytes
            process:    name \(image.process.name), cwd \(image.process.cwd), umask \(String(image.process.umask, radix: 8))
            brk:        0x\(hex(image.process.startBrk))-0x\(hex(image.process.brk))

            """
        if let parent = image.parent {
            let inherited = image.memoryAreas.reduce(0) { $0 + $1.inheritedPages } * RecordHeader.pageSize
            out += "parent:     \(parent.name) (checkpoint #\(parent.sequence)); incremental, \(parent.chainLength) images in "
                + "the chain; \(inherited) bytes inherited\n"
        }
        for thread in image.threads {
            out += "thread \(thread.tid) (\(thread.name)): fs_base 0x\(hex(thread.fsBase)) sigmask 0x\(hex(thread.signalMask))"
                + " rseq 0x\(hex(thread.rseqAddress)) clear_child_tid 0x\(hex(thread.clearChildTID))\n"
            for (i, name) in ThreadRecord.registerNames.enumerated() where i <= ThreadRecord.segmentsIndex {
                out += "  \(pad(name, 7)) 0x\(hex(thread.generalRegisters[i], width: 16))"
                out += i % 4 == 3 ? "\n" : ""
            }
            out += "\n  xsave \(thread.xsave.count) bytes, features in use 0x\(hex(thread.xstateFeatures))\n"
        }
        if !image.pendingSignals.isEmpty { out += "\npending signals (in queue order):\n" }
        for signal in image.pendingSignals {
            out += "  \(signal.signal) " + (signal.isProcessDirected ? "process" : "thread \(signal.tid)")
                + ": code \(signal.code) from pid \(signal.senderPID) uid \(signal.senderUID) value \(signal.value)\n"
        }
        let pageBytes = image.memoryAreas.reduce(0) { $0 + $1.fileBytes }
        out += "\nmemory (\(image.memoryAreas.count) areas, \(image.rawPageBytes) bytes of pages stored"
            + (pageBytes != image.rawPageBytes ? ", compressed to \(pageBytes) bytes (\(pageBytes * 100 / max(image.rawPageBytes, 1))%)" : "") + "):\n"
        for area in image.memoryAreas {
            out += "  \(hex(area.start, width: 12))-\(hex(area.end, width: 12)) \(protection(area)) "
                + "\(pad(String(area.storedPages * RecordHeader.pageSize), 10)) \(area.path)"
                + (area.isCompressed ? " (compressed to \(area.fileBytes))" : "")
                + (area.inheritedPages > 0 ? " (+\(area.inheritedPages * RecordHeader.pageSize) inherited)" : "") + "\n"
        }
        out += "\nfile descriptors:\n"
        for fd in image.fileDescriptors {
            // A tree member's descriptor that is another member's open file description (none in a single image).
            let shared = image.sharedDescriptions.first { $0.fd == fd.fd }
            out += "  \(fd.fd): \(fd.kind) \(fd.path) flags 0x\(hex(UInt64(fd.statusFlags))) offset \(fd.offset)"
                + (fd.isCloseOnExec ? " cloexec" : "")
                + (shared.map { " (same open file as process \($0.ownerPID) fd \($0.ownerFD))" } ?? "") + "\n"
        }
        out += "\nsignal handlers:\n"
        for (i, action) in image.signalActions.actions.enumerated() where action.handler != 0 {
            out += "  \(i + 1): " + (action.handler == 1 ? "ignored" : "handler 0x\(hex(action.handler))")
                + " flags 0x\(hex(action.flags))\n"
        }
        return out
    }

    /// The fields every image's and every tree's JSON object starts with, from its header.
    static func headerJSONFields(_ h: ImageHeader, size: UInt64) -> [String] {
        ["\"format\": \(h.version)", "\"size\": \(size)", "\"program\": \"\(jsonEscape(h.program))\"", "\"pid\": \(h.pid)",
         "\"uid\": \(h.uid)", "\"sequence\": \(h.sequence)", "\"time_ns\": \(h.timeNanoseconds)"]
    }

    static func json(_ image: Image, size: UInt64) -> String {
        let h = image.header
        func str(_ s: String) -> String { "\"\(jsonEscape(s))\"" }
        var parts = headerJSONFields(h, size: size)
        if let parent = image.parent {
            parts.append("\"parent\": {\"name\": \(str(parent.name)), \"sequence\": \(parent.sequence), \"chain_length\": \(parent.chainLength)}")
        } else {
            parts.append("\"parent\": null")
        }
        parts.append("\"kernel\": \(str(h.kernelRelease))")
        parts.append("\"signed\": \(image.signature != nil)")
        parts.append("\"xcr0\": \(h.xcr0)")
        parts.append("\"xsave_size\": \(h.xsaveSize)")
        parts.append("\"cwd\": \(str(image.process.cwd))")
        let threads = image.threads.map { t in
            let regs = ThreadRecord.registerNames.enumerated().map { "\(str($0.element)): \(t.generalRegisters[$0.offset])" }
            return "{\"tid\": \(t.tid), \"name\": \(str(t.name)), \"fs_base\": \(t.fsBase), \"sigmask\": \(t.signalMask), "
                + "\"registers\": {\(regs.joined(separator: ", "))}, \"xsave_bytes\": \(t.xsave.count)}"
        }
        parts.append("\"threads\": [\(threads.joined(separator: ", "))]")
        let areas = image.memoryAreas.map { a in
            "{\"start\": \(a.start), \"end\": \(a.end), \"perms\": \(str(protection(a))), \"path\": \(str(a.path)), "
                + "\"stored_bytes\": \(a.rawBytes), \"file_bytes\": \(a.fileBytes), \"compressed\": \(a.isCompressed), "
                + "\"inherited_bytes\": \(a.inheritedPages * RecordHeader.pageSize)}"
        }
        parts.append("\"memory\": [\(areas.joined(separator: ", "))]")
        let fds = image.fileDescriptors.map { f in
            // shared_with only for a tree member's descriptor that is another member's description.
            let shared = image.sharedDescriptions.first { $0.fd == f.fd }
            return "{\"fd\": \(f.fd), \"kind\": \(str("\(f.kind)")), \"path\": \(str(f.path)), \"flags\": \(f.statusFlags), "
                + "\"offset\": \(f.offset), \"cloexec\": \(f.isCloseOnExec)"
                + (shared.map { ", \"shared_with\": {\"pid\": \($0.ownerPID), \"fd\": \($0.ownerFD)}" } ?? "") + "}"
        }
        parts.append("\"fds\": [\(fds.joined(separator: ", "))]")
        let signals = image.signalActions.actions.enumerated().filter { $0.element.handler != 0 }.map {
            "{\"signal\": \($0.offset + 1), \"handler\": \($0.element.handler), \"flags\": \($0.element.flags)}"
        }
        parts.append("\"signals\": [\(signals.joined(separator: ", "))]")
        return "{" + parts.joined(separator: ", ") + "}"
    }

    /// For `stasis ls`: "pages compressed to N%  " when they are, else nothing.
    static func compressionNote(raw: UInt64, stored: UInt64) -> String {
        raw == 0 || stored == raw ? "" : "pages compressed to \(stored * 100 / raw)%  "
    }
}
