import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes artifacts under the output directory so that a final name only ever holds a complete file.
///
/// Rule: write to a temporary beside the destination, fsync it, rename it into place, fsync the
/// directory, and only then let the engine commit the row. Why: `rename` is atomic within a file
/// system, so a crash leaves either the old file, the new one, or an orphan temporary that the next
/// run removes — never a truncated file under a name the database trusts.
public struct OutputFiles: Sendable {
    public static let temporaryMarker = ".pipelined-tmp-"
    public let root: URL

    public init(root: URL) { self.root = root }

    /// Produces `relativePath` through `write`, which receives the temporary path to fill.
    public func publish(_ relativePath: String, write: (String) throws -> Void) throws {
        let destination = root.appendingPathComponent(relativePath)
        let directory = destination.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(".\(destination.lastPathComponent)\(Self.temporaryMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try write(temporary.path)
            try Self.fsync(path: temporary.path, directory: false)
            guard rename(temporary.path, destination.path) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: destination.path, NSLocalizedDescriptionKey: String(cString: strerror(errno))])
            }
            try Self.fsync(path: directory.path, directory: true)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Deletes temporaries left by runs that died (call only while holding the run lock).
    @discardableResult
    public func removeOrphanTemporaries() -> Int {
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return 0 }
        var removed = 0
        for case let url as URL in walker where url.lastPathComponent.contains(Self.temporaryMarker) {
            if (try? FileManager.default.removeItem(at: url)) != nil { removed += 1 }
        }
        return removed
    }

    static func fsync(path: String, directory: Bool) throws {
        let fd = open(path, directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY)
        guard fd >= 0 else { throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
        defer { close(fd) }
        _ = Glibc.fsync(fd)
    }
}
