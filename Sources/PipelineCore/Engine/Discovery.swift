import Foundation

/// Finds the input files under a directory.
///
/// Every regular, non-hidden file is a candidate: whether it is a video is decided by probing its
/// content in stage 1, not by its extension (a `.bin` that holds an MP4 is processed; a `.mp4` that
/// holds garbage is rejected with a reason). Symbolic links are followed; hidden files and folders
/// (a leading dot) are skipped, as are files that vanish or cannot be read while scanning.
public enum Discovery {
    public static func scan(_ root: URL) throws -> [DiscoveredFile] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw DiscoveryError.notADirectory(root.path)
        }
        let rootPath = root.resolvingSymlinksInPath().standardizedFileURL.path
        guard let walker = fm.enumerator(at: URL(fileURLWithPath: rootPath), includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey, .contentModificationDateKey],
                                         options: [.skipsHiddenFiles]) else { return [] }
        var files: [DiscoveredFile] = []
        for case let url as URL in walker {
            let resolved = url.resolvingSymlinksInPath()
            guard let values = try? resolved.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey, .contentModificationDateKey]),
                  values.isRegularFile == true else { continue }
            let size = Int64(values.fileSize ?? 0)
            guard let hash = try? Fingerprint.ofFile(at: resolved, size: size) else { continue }
            var relative = url.standardizedFileURL.path
            if relative.hasPrefix(rootPath + "/") { relative.removeFirst(rootPath.count + 1) }
            files.append(DiscoveredFile(relativePath: relative, size: size,
                                        mtime: values.contentModificationDate?.timeIntervalSince1970 ?? 0, contentHash: hash))
        }
        return files.sorted { $0.relativePath < $1.relativePath }
    }
}

public enum DiscoveryError: Error, CustomStringConvertible {
    case notADirectory(String)
    public var description: String {
        switch self { case let .notADirectory(p): "input directory \(p) does not exist or is not a directory" }
    }
}
