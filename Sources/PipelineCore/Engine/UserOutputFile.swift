import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a file the user named on the command line (`report --html`, `export --fileslist`,
/// `infer --out`) the way a careful Unix tool does:
///
/// - a symbolic link is written through (its target is replaced), never replaced by a file;
/// - a device, FIFO or socket (`/dev/null`, `/dev/stdout`, a named pipe) is written through: the
///   content goes into it, the node stays what it is;
/// - a regular file (or a new one) is replaced atomically (temporary beside it, fsync, rename),
///   keeping its permissions, so a reader never sees half a page;
/// - the pipeline's own files (the database, its WAL and lock) and the command's inputs are refused,
///   whatever path names them.
public enum UserOutputFile {
    /// A path that must not be written, and what it is (for the message).
    public struct Protected: Sendable {
        public var path: String
        public var what: String
        public init(_ path: String, _ what: String) { self.path = path; self.what = what }

        /// The database at `path` and its companions.
        public static func database(_ path: String) -> [Protected] {
            ["", "-wal", "-shm", "-journal", ".lock"].map { Protected(path + $0, "the pipeline's database (\(path))") }
        }
    }

    /// Writes `path` through `write`, which fills the temporary path it is given (ending in
    /// `temporarySuffix`, for writers that choose a format by extension).
    public static func write(to path: String, protecting protected: [Protected], temporarySuffix: String = "",
                             _ write: (String) throws -> Void) throws {
        let target = try resolve(path)
        for p in protected where same(target, p.path) {
            throw OutputFileError.refused(path: path, reason: "it is \(p.what)")
        }
        var info = stat()
        if stat(target, &info) == 0 {
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                throw OutputFileError.refused(path: path, reason: "it is a folder; name a file to write")
            case S_IFREG:
                try replace(target, mode: info.st_mode & 0o7777, temporarySuffix: temporarySuffix, write)
            default:
                try writeThrough(target, requested: path, temporarySuffix: temporarySuffix, write)
            }
        } else {
            try replace(target, mode: nil, temporarySuffix: temporarySuffix, write)
        }
    }

    /// Everything `write` would refuse, checked before any work (a long job must not end on it).
    public static func check(_ path: String, protecting protected: [Protected]) throws {
        let target = try resolve(path)
        for p in protected where same(target, p.path) {
            throw OutputFileError.refused(path: path, reason: "it is \(p.what)")
        }
        var info = stat()
        if stat(target, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw OutputFileError.refused(path: path, reason: "it is a folder; name a file to write")
        }
    }

    /// The file `path` names: symbolic links followed (also dangling ones: their target is created).
    static func resolve(_ path: String) throws -> String {
        var current = URL(fileURLWithPath: path).standardizedFileURL.path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { break }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(current, &buffer, Int(PATH_MAX))
            guard n > 0 else { break }
            let destination = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            current = destination.hasPrefix("/") ? destination
                : URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(destination).standardizedFileURL.path
        }
        let folder = URL(fileURLWithPath: current).deletingLastPathComponent().path
        var info = stat()
        guard stat(folder, &info) == 0 else {
            throw OutputFileError.cannotWrite(path: path, reason: "the folder \(folder) does not exist; create it first")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw OutputFileError.cannotWrite(path: path, reason: "\(folder) is not a folder")
        }
        guard let real = realpath(folder, nil) else { return current }
        defer { free(real) }
        return String(cString: real) + "/" + URL(fileURLWithPath: current).lastPathComponent
    }

    /// Whether `a` and `b` name one file: the same inode, or (for a file not there yet, a WAL say)
    /// the same resolved path.
    static func same(_ a: String, _ b: String) -> Bool {
        var x = stat(), y = stat()
        if stat(a, &x) == 0, stat(b, &y) == 0 { return x.st_dev == y.st_dev && x.st_ino == y.st_ino }
        return (try? resolve(b)) == a
    }

    private static func replace(_ target: String, mode: mode_t?, temporarySuffix: String, _ write: (String) throws -> Void) throws {
        let url = URL(fileURLWithPath: target)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(OutputFiles.temporaryName(for: url.lastPathComponent, suffix: temporarySuffix)).path
        do {
            try write(temporary)
            if let mode { chmod(temporary, mode) }
            let pending = OutputFiles.PendingFile(temporaryPath: temporary, destination: url)
            try pending.commit()
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// A device or FIFO: the content is made in the system's temporary folder, then copied in.
    private static func writeThrough(_ target: String, requested: String, temporarySuffix: String, _ write: (String) throws -> Void) throws {
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent(OutputFiles.temporaryName(for: "output", suffix: temporarySuffix)).path
        defer { unlink(temporary) }
        try write(temporary)
        let input = open(temporary, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw OutputFileError.cannotWrite(path: requested, reason: String(cString: strerror(errno))) }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CLOEXEC)
        guard output >= 0 else { throw OutputFileError.cannotWrite(path: requested, reason: String(cString: strerror(errno))) }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(input, &buffer, buffer.count)
            if n < 0 { if errno == EINTR { continue }; throw OutputFileError.cannotWrite(path: requested, reason: String(cString: strerror(errno))) }
            if n == 0 { break }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { Glibc.write(output, $0.baseAddress! + done, n - done) }
                if w < 0 { if errno == EINTR { continue }; throw OutputFileError.cannotWrite(path: requested, reason: String(cString: strerror(errno))) }
                done += w
            }
        }
    }
}
