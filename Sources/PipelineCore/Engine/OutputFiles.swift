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
        let pending = try prepare(relativePath)
        do {
            try write(pending.temporaryPath)
            try pending.commit()
        } catch {
            pending.discard()
            throw error
        }
    }

    /// A temporary beside `relativePath`'s destination, for writers that fill it over time; call
    /// `commit()` once it is complete, or `discard()`.
    public func prepare(_ relativePath: String) throws -> PendingFile {
        let destination = root.appendingPathComponent(relativePath)
        let directory = destination.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(".\(destination.lastPathComponent)\(Self.temporaryMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        return PendingFile(temporaryPath: temporary.path, destination: destination)
    }

    /// A file being written under a temporary name.
    public struct PendingFile: Sendable {
        public let temporaryPath: String
        public let destination: URL

        /// fsync, rename into place (at `destination`, or another name in the same folder), fsync the directory.
        public func commit(as other: URL? = nil) throws {
            let destination = other ?? self.destination
            precondition(destination.deletingLastPathComponent() == self.destination.deletingLastPathComponent(), "a rename stays in its folder")
            try OutputFiles.fsync(path: temporaryPath, directory: false)
            guard rename(temporaryPath, destination.path) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: destination.path, NSLocalizedDescriptionKey: String(cString: strerror(errno))])
            }
            try OutputFiles.fsync(path: destination.deletingLastPathComponent().path, directory: true)
        }

        public func discard() { try? FileManager.default.removeItem(atPath: temporaryPath) }
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
