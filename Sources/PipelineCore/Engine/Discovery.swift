import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Finds the input files under a directory.
///
/// Every regular, non-hidden file is a candidate: whether it is a video is decided by probing its
/// content in stage 1, not by its extension (a `.bin` that holds an MP4 is processed; a `.mp4` that
/// holds garbage is rejected with a reason). Hidden files and folders (a leading dot) are skipped.
///
/// Symbolic links are followed, to files and to folders (a folder reached twice through links is
/// walked once: a loop ends there). An entry that cannot be processed as it is still becomes a
/// source, with a `problem` that stage 1 turns into a rejection, so `status` says why it is not in
/// the dataset instead of the file vanishing silently: a name that is not UTF-8 (the database and
/// `fileslist.txt` are UTF-8 text), a name with a line break or another control character (it would
/// split a `fileslist.txt` line), a dangling link, a link loop, a file that cannot be opened, a
/// FIFO, socket or device (never opened: reading them would block or never end).
///
/// The walk works on the file system's bytes (`opendir`/`readdir`/`stat`), not on Foundation's
/// URLs, which drop names that are not UTF-8 and do not descend into linked folders.
public enum Discovery {
    public static func scan(_ root: URL) throws -> [DiscoveredFile] {
        var info = stat()
        guard stat(root.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DiscoveryError.notADirectory(root.path)
        }
        var walk = Walk()
        walk.visit(directory: Array(root.path.utf8), relative: [], identity: FileIdentity(info))
        // Two byte-different names can only map to one relative path through the `\xNN` escaping
        // of names that are not UTF-8; keep the first.
        var seen = Set<String>()
        return walk.files.filter { seen.insert($0.relativePath).inserted }.sorted { $0.relativePath < $1.relativePath }
    }

    private struct Walk {
        var files: [DiscoveredFile] = []
        /// Folders on the way down from the root (device, inode): a link back to one of them is a loop.
        var ancestors: [FileIdentity] = []
        /// Every folder walked: a folder linked from two places is walked once.
        var walked = Set<FileIdentity>()

        mutating func visit(directory path: [UInt8], relative: [UInt8], identity: FileIdentity) {
            guard walked.insert(identity).inserted, !ancestors.contains(identity) else { return }
            ancestors.append(identity)
            defer { ancestors.removeLast() }
            guard let dir = path.withCString({ opendir($0) }) else {
                if !relative.isEmpty { record(relative, problem: "the folder cannot be read: \(String(cString: strerror(errno)))") }
                return
            }
            var names: [[UInt8]] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
                if name.first == UInt8(ascii: ".") { continue } // hidden, ".", ".."
                names.append(name)
            }
            closedir(dir)
            for name in names.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                let childPath = path + [UInt8(ascii: "/")] + name
                let childRelative = relative.isEmpty ? name : relative + [UInt8(ascii: "/")] + name
                var link = stat(), target = stat()
                guard childPath.withCString({ lstat($0, &link) }) == 0 else { continue } // vanished while scanning
                let isLink = (link.st_mode & S_IFMT) == S_IFLNK
                if isLink {
                    guard childPath.withCString({ stat($0, &target) }) == 0 else {
                        let destination = Self.linkTarget(childPath)
                        record(childRelative, problem: "a symbolic link to \(destination), which does not exist (or loops); fix or remove the link")
                        continue
                    }
                } else {
                    target = link
                }
                switch target.st_mode & S_IFMT {
                case S_IFDIR:
                    if isLink, ancestors.contains(FileIdentity(target)) {
                        record(childRelative, problem: "a symbolic link loop: it points back to a folder it is in (\(Self.linkTarget(childPath))); nothing under it was read twice")
                        continue
                    }
                    visit(directory: childPath, relative: childRelative, identity: FileIdentity(target))
                case S_IFREG:
                    var problem: String?
                    let fd = childPath.withCString { open($0, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
                    if fd < 0 { problem = "the file cannot be opened: \(String(cString: strerror(errno))); check its permissions" } else { close(fd) }
                    record(childRelative, size: Int64(target.st_size), mtime: Self.mtime(childPath, target), problem: problem)
                default:
                    // A FIFO would block a reader forever, a device never ends: not inputs, but said.
                    let kind = switch target.st_mode & S_IFMT {
                    case S_IFIFO: "a FIFO (named pipe)"
                    case S_IFSOCK: "a socket"
                    case S_IFCHR: "a character device"
                    case S_IFBLK: "a block device"
                    default: "not a regular file"
                    }
                    record(childRelative, problem: "\(kind), not a regular file; pipelined reads regular files only")
                }
            }
        }

        mutating func record(_ relative: [UInt8], size: Int64 = 0, mtime: Double = 0, problem: String?) {
            let (path, nameProblem) = Discovery.text(of: relative)
            files.append(DiscoveredFile(relativePath: path, size: size, mtime: mtime, contentHash: nil, problem: nameProblem ?? problem))
        }

        static func linkTarget(_ path: [UInt8]) -> String {
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
            let n = path.withCString { readlink($0, &buffer, buffer.count) }
            return n > 0 ? Discovery.text(of: Array(buffer.prefix(n))).text : "?"
        }

        /// Seconds since 1970 exactly as releases before v2 stored them: Foundation's
        /// `contentModificationDate` of the resolved path. The database compares the stored value
        /// for equality, and Foundation's conversion rounds differently from a plain
        /// `sec + nsec / 1e9` (one ulp off would make every file look touched after an upgrade).
        /// A path that is not UTF-8 has no URL; it is rejected anyway.
        static func mtime(_ path: [UInt8], _ info: stat) -> Double {
            if let text = String(validating: path, as: UTF8.self),
               let date = try? URL(fileURLWithPath: text).resolvingSymlinksInPath().resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate {
                return date.timeIntervalSince1970
            }
            return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1_000_000_000
        }
    }

    /// A relative path as text, and why it cannot be used as it is: bytes that are not UTF-8 are
    /// shown as `\xNN`; control characters (a line break would split a `fileslist.txt` line) are
    /// named.
    static func text(of bytes: [UInt8]) -> (text: String, problem: String?) {
        if let text = String(validating: bytes, as: UTF8.self) {
            if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                let shown = text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? String(format: "\\x%02X", $0.value) : String($0) }.joined()
                return (text, "the name \"\(shown)\" contains a line break or another control character, which fileslist.txt cannot hold; rename the file")
            }
            return (text, nil)
        }
        // Decode what is valid and escape the rest, byte by byte.
        var text = ""
        var index = 0
        while index < bytes.count {
            var decoded = false
            for length in (1...4).reversed() where index + length <= bytes.count {
                if let piece = String(validating: bytes[index..<(index + length)], as: UTF8.self) {
                    text += piece; index += length; decoded = true; break
                }
            }
            if !decoded { text += String(format: "\\x%02X", bytes[index]); index += 1 }
        }
        return (text, "the name is not valid UTF-8 (shown with \\xNN for the bytes that are not); rename the file in UTF-8")
    }
}

/// A file's device and inode: what makes two paths the same file.
struct FileIdentity: Hashable {
    var device: UInt64
    var inode: UInt64
    init(_ info: stat) { device = UInt64(info.st_dev); inode = UInt64(info.st_ino) }
}

public enum DiscoveryError: Error, CustomStringConvertible {
    case notADirectory(String)
    public var description: String {
        switch self { case let .notADirectory(p): "input directory \(p) does not exist or is not a directory" }
    }
}

extension Array where Element == UInt8 {
    /// The bytes as a NUL-terminated C string (paths here are bytes, not necessarily UTF-8).
    fileprivate func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (self + [0]).withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}
