import StasisImage
import StasisSystem

/// A key file's bytes (1 to 4000), for HMAC-SHA256 signatures. Used by run, checkpoint, restart,
/// verify and compact: a bad key file is a usage error (exit 2) everywhere.
func readKeyFile(_ path: String) throws(LauncherError) -> [UInt8] {
    let key: [UInt8]
    do {
        key = try readFile(path)
    } catch {
        throw LauncherError(.usage, "cannot read key file \(path): \(error)")
    }
    guard !key.isEmpty, key.count <= 4000 else {
        throw LauncherError(.usage, "key file \(path) must hold 1 to 4000 bytes")
    }
    return key
}

/// The key of an optional `--key FILE`.
func readKeyFile(ifGiven path: String?) throws(LauncherError) -> [UInt8]? {
    guard let path else { return nil }
    return try readKeyFile(path)
}

/// `--key`: the image's signature must be this key's (exit 11 otherwise).
func checkSignature(_ image: Image, _ source: FileImageSource, key: [UInt8]) throws(LauncherError) {
    do {
        try image.verifySignature(from: source, key: key)
    } catch {
        throw LauncherError(.signatureMismatch, "\(source.path): \(error)")
    }
}
