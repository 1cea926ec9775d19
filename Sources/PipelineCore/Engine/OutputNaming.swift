import Foundation

/// How a source's output files are named, so that no two sources ever share one.
///
/// The reference names pieces `<name>_shot_NNN_MMM.mp4` after the source's file name without its
/// extension, so `talk.mp4` and `talk.mov` in one folder wrote the same files (one overwrote the
/// other, and pruning one deleted the other's clips). Rule: every source gets an *output stem*
/// `<dir>/<name>` when it is first discovered, stored in `source.outputStem` under a unique index.
/// The first source to want a name gets the reference's (`talk`); a later one with the same name
/// keeps its extension (`talk.mov`), and if even that is taken, a hash of its path is appended. A stem
/// never changes once given, so adding a file never renames another's outputs.
///
/// File names are also kept within the file system's 255 bytes: a name too long to carry the
/// longest suffix (`_shot_NNN_MMM_pK.landmarks` and the temporaries' marker) is cut at a character
/// boundary and a hash of the whole name appended, instead of failing on every run.
public enum OutputNaming {
    /// Bytes a stem's name may use: 255 minus the longest suffix a clip name gets (`_shot_` with two
    /// numbers, `_pNN`, `.landmarks`: ≤ 40 bytes).
    public static let maxNameBytes = 215

    /// The reference's stem: the relative path without the file's extension.
    public static func referenceStem(of relativePath: String) -> String {
        let (dir, file) = split(relativePath)
        return join(dir, fitted(withoutExtension(file)))
    }

    /// The stem for a new source at `relativePath`, given the stems already taken.
    public static func stem(for relativePath: String, taken: Set<String>) -> String {
        let (dir, file) = split(relativePath)
        let candidates = [fitted(withoutExtension(file)), fitted(file), fitted(file + "~" + shortHash(relativePath))]
        for name in candidates where !taken.contains(join(dir, name)) { return join(dir, name) }
        var n = 2
        while taken.contains(join(dir, fitted(file + "~\(n)"))) { n += 1 }
        return join(dir, fitted(file + "~\(n)"))
    }

    /// `name` unchanged when it fits `maxBytes` UTF-8 bytes; else its longest prefix that fits with
    /// `~` and 8 hex digits of the whole name's hash appended.
    public static func fitted(_ name: String, maxBytes: Int = maxNameBytes) -> String {
        guard name.utf8.count > maxBytes else { return name }
        let tail = "~" + shortHash(name)
        var prefix = ""
        for character in name {
            if prefix.utf8.count + String(character).utf8.count + tail.utf8.count > maxBytes { break }
            prefix.append(character)
        }
        return prefix + tail
    }

    static func shortHash(_ text: String) -> String { String(Fingerprint.sha256(Array(text.utf8)).prefix(8)) }

    /// As the reference (and pipelined before v2) cut the extension: Foundation's rule.
    static func withoutExtension(_ file: String) -> String {
        URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
    }

    static func split(_ relativePath: String) -> (dir: String, file: String) {
        guard let slash = relativePath.lastIndex(of: "/") else { return ("", relativePath) }
        return (String(relativePath[..<slash]), String(relativePath[relativePath.index(after: slash)...]))
    }

    static func join(_ dir: String, _ name: String) -> String { dir.isEmpty ? name : dir + "/" + name }
}
