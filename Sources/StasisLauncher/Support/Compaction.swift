/// Makes the newest image of a chain standalone in place (`stasis compact IMAGE`), for `stasis
/// checkpoint` when a chain reaches the program's --max-chain. The one door from the other commands
/// into compaction: when compaction moves to StasisImage, only this body changes.
func compactInPlace(_ image: String, key: [UInt8]?) throws(LauncherError) {
    _ = try CompactCommand.compact(image, key: key)
}
