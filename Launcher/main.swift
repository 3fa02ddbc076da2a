// stasis: the launcher. Starts programs with the agent preloaded, asks running ones for a checkpoint,
// restarts images through the restorer, and shows what an image holds. See README.md.
// Everything but this line lives in the StasisLauncher library (Sources/StasisLauncher), where
// the unit tests reach it.
import Glibc
import StasisLauncher

exit(stasisMain(Array(CommandLine.arguments.dropFirst())))
