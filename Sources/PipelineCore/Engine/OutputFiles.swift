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
///
/// A temporary is named `.<name>.pipelined-tmp-<host>-<pid>-<random>`: the sweep of orphans removes
/// only temporaries of this host whose process is dead, so a live run's files (another run on the
/// same output directory, another host on a shared disk) are never taken from under it.
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
        return PendingFile(temporaryPath: directory.appendingPathComponent(Self.temporaryName(for: destination.lastPathComponent)).path,
                           destination: destination)
    }

    /// `.<name>.pipelined-tmp-<host>-<pid>-<random>[suffix]`, the name cut (at a character) so that
    /// the whole stays within 255 bytes: a long final name must not fail as "File name too long".
    public static func temporaryName(for name: String, suffix: String = "") -> String {
        let tail = "\(temporaryMarker)\(hostName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))\(suffix)"
        return "." + OutputNaming.fitted(name, maxBytes: 255 - 1 - tail.utf8.count) + tail
    }

    /// This host's name as temporaries carry it (dashes kept; the pid and the random number are
    /// read from the end).
    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        let name = String(cString: buffer).filter { $0 != "/" }
        return name.isEmpty ? "localhost" : String(name.prefix(64))
    }()

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
                throw OutputFileError.cannotWrite(path: destination.path, reason: String(cString: strerror(errno)))
            }
            try OutputFiles.fsync(path: destination.deletingLastPathComponent().path, directory: true)
        }

        public func discard() { try? FileManager.default.removeItem(atPath: temporaryPath) }
    }

    /// The pid and host a temporary's name carries, or nil when `name` is not one of ours.
    /// Temporaries of releases before v2 carry no host (`.<name>.pipelined-tmp-<pid>-<random>`).
    static func owner(ofTemporary name: String) -> (host: String?, pid: Int32)? {
        guard name.hasPrefix("."), let marker = name.range(of: temporaryMarker, options: .backwards) else { return nil }
        let fields = name[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count >= 2, UInt32(fields[fields.count - 1]) != nil, let pid = Int32(fields[fields.count - 2]), pid > 0 else { return nil }
        let host = fields.count > 2 ? fields[..<(fields.count - 2)].joined(separator: "-") : nil
        return (host, pid)
    }

    /// What the janitor of a shared output directory knows about other hosts' writers.
    public struct OtherHosts: Sendable {
        /// Whether the ledger has a live worker with this host name and pid.
        public var isAlive: @Sendable (_ host: String, _ pid: Int32) -> Bool
        /// A temporary untouched this long is not being written (twice the lease: its writer would
        /// have lost its claim long before).
        public var staleAfter: TimeInterval
        public init(isAlive: @escaping @Sendable (String, Int32) -> Bool, staleAfter: TimeInterval) {
            self.isAlive = isAlive; self.staleAfter = staleAfter
        }
    }

    /// Deletes temporaries left by processes of this host that died, anywhere under the root but
    /// in `excluded` folders (the input directory, which the default layout puts inside the output
    /// directory: nothing there is ever ours to delete). Symbolic links are not followed.
    ///
    /// With `otherHosts` (a ledger shared by several hosts), also other hosts' temporaries whose
    /// writer the ledger does not know alive and that nobody touched for `staleAfter` seconds: a
    /// host that died for good leaves no garbage behind. Another host's pid cannot be asked, so
    /// both conditions must hold.
    @discardableResult
    public func removeOrphanTemporaries(excluding excluded: [URL] = [], otherHosts: OtherHosts? = nil) -> Int {
        let skipped = Set(excluded.map { $0.resolvingSymlinksInPath().standardizedFileURL.path })
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey]) else { return 0 }
        var removed = 0
        for case let url as URL in walker {
            // Only folders can be excluded ones: resolve those (few), not every file (many).
            if (try? url.resourceValues(forKeys: [.isDirectoryKey]))?.isDirectory == true {
                if skipped.contains(url.resolvingSymlinksInPath().standardizedFileURL.path) { walker.skipDescendants() }
                continue
            }
            guard let owner = Self.owner(ofTemporary: url.lastPathComponent) else { continue }
            var info = stat()
            guard lstat(url.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if owner.host == nil || owner.host == Self.hostName {
                guard kill(owner.pid, 0) != 0 && errno == ESRCH else { continue } // its writer is alive
            } else {
                guard let otherHosts, let host = owner.host, !otherHosts.isAlive(host, owner.pid) else { continue }
                let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
                guard Date().timeIntervalSince1970 - modified >= otherHosts.staleAfter else { continue }
            }
            if unlink(url.path) == 0 { removed += 1 }
        }
        return removed
    }

    /// Removes stray outputs: regular, non-hidden files under the folders the pipeline writes its
    /// artifacts to (the first path component of a `known` path) that no result names, untouched
    /// for `olderThan` seconds. They come from a worker killed between renaming an output into
    /// place and committing it, whose item was not made again under that name (its source changed
    /// or left meanwhile). The age keeps a live worker's output between its rename and its commit;
    /// files at the top of the output directory (the index, the database) and the `excluded`
    /// folders (the input directory) are never looked at. Returns the paths removed.
    public func removeStrayOutputs(known: Set<String>, olderThan: TimeInterval, excluding excluded: [URL] = []) -> [String] {
        let folders = Set(known.compactMap { path -> String? in
            let parts = path.split(separator: "/", maxSplits: 1)
            return parts.count == 2 && !parts[0].hasPrefix(".") && parts[0] != ".." ? String(parts[0]) : nil
        })
        let skipped = Set(excluded.map { $0.resolvingSymlinksInPath().standardizedFileURL.path })
        let now = Date().timeIntervalSince1970
        var removed: [String] = []
        for folder in folders.sorted() {
            let top = root.appendingPathComponent(folder)
            if skipped.contains(top.resolvingSymlinksInPath().standardizedFileURL.path) { continue }
            var info = stat()
            // A folder, not a link to one elsewhere.
            guard lstat(top.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR,
                  let walker = FileManager.default.enumerator(atPath: top.path) else { continue }
            while let relative = walker.nextObject() as? String {
                let name = (relative as NSString).lastPathComponent
                let path = folder + "/" + relative
                guard !name.hasPrefix("."), !known.contains(path) else { continue }
                let full = root.appendingPathComponent(path).path
                guard lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
                guard now - modified >= olderThan else { continue }
                if unlink(full) == 0 { removed.append(path) }
            }
        }
        return removed
    }

    /// Whether the artifact at `relativePath` exists.
    public func exists(_ relativePath: String) -> Bool {
        var info = stat()
        return stat(root.appendingPathComponent(relativePath).path, &info) == 0
    }

    /// Removes artifacts that no result owns any more: regular files at relative paths inside the
    /// root (no `..`, nothing absolute), never inside `excluded` folders. Returns the paths removed
    /// and those that were not there.
    public func removeArtifacts(_ relativePaths: [String], excluding excluded: [URL] = []) -> (removed: [String], absent: [String]) {
        let rootPath = root.standardizedFileURL.path
        let skipped = excluded.map { $0.resolvingSymlinksInPath().standardizedFileURL.path }
        var removed: [String] = [], absent: [String] = []
        for relative in relativePaths {
            guard !relative.hasPrefix("/"), !relative.split(separator: "/").contains("..") else { continue }
            let path = root.appendingPathComponent(relative).standardizedFileURL.path
            guard path.hasPrefix(rootPath + "/") else { continue }
            let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            if skipped.contains(where: { real == $0 || real.hasPrefix($0 + "/") }) { continue }
            var info = stat()
            if lstat(path, &info) != 0 { if errno == ENOENT { absent.append(relative) }; continue }
            guard (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if unlink(path) == 0 { removed.append(relative) }
        }
        return (removed, absent)
    }

    static func fsync(path: String, directory: Bool) throws {
        let fd = open(path, directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY)
        guard fd >= 0 else { throw OutputFileError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        _ = Glibc.fsync(fd)
    }
}

public enum OutputFileError: Error, CustomStringConvertible, Equatable {
    case cannotWrite(path: String, reason: String)
    case refused(path: String, reason: String)
    public var description: String {
        switch self {
        case let .cannotWrite(path, reason): "cannot write \(path): \(reason)"
        case let .refused(path, reason): "will not write \(path): \(reason)"
        }
    }
}
