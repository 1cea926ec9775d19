import Foundation

/// Sets one key of a `pipeline.conf` in place, leaving every other line (comments, order,
/// spacing) as the user wrote it: `pipelined calibrate sync --apply` writes its threshold this way.
public enum ConfigFileEdit {
    /// `text` with `[section] key = value`: the key's line replaced where the section has it, else
    /// the line added after the section's last setting, else the section appended. `comment` goes
    /// after the value.
    public static func setting(_ key: String, to value: String, in section: String, of text: String, comment: String? = nil) -> String {
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        let newLine = "\(key) = \(value)" + (comment.map { "  # \($0)" } ?? "")
        var current: String?
        var sectionStart: Int?
        var lastSetting: Int?
        for (i, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let name = header(trimmed) {
                if current == section { break }
                current = name
                if name == section { sectionStart = i; lastSetting = i }
                continue
            }
            guard current == section else { continue }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            lastSetting = i
            if let eq = trimmed.firstIndex(of: "="), trimmed[..<eq].trimmingCharacters(in: .whitespaces) == key {
                lines[i] = newLine
                return lines.joined(separator: "\n") + "\n"
            }
        }
        if sectionStart != nil, let at = lastSetting {
            lines.insert(newLine, at: at + 1)
        } else {
            if let last = lines.last, !last.trimmingCharacters(in: .whitespaces).isEmpty { lines.append("") }
            lines += ["[\(section)]", newLine]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The table name of a `[name]` header line (not `[[arrays]]`), else nil.
    static func header(_ trimmed: String) -> String? {
        guard trimmed.hasPrefix("["), !trimmed.hasPrefix("[["), let close = trimmed.firstIndex(of: "]") else { return nil }
        let rest = trimmed[trimmed.index(after: close)...].trimmingCharacters(in: .whitespaces)
        guard rest.isEmpty || rest.hasPrefix("#") else { return nil }
        return trimmed[trimmed.index(after: trimmed.startIndex)..<close].trimmingCharacters(in: .whitespaces)
    }
}
