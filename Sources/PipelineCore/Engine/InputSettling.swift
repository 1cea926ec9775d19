import Foundation

/// Which input files a long-running worker may take now: a file is taken only once it has stood
/// still — the same size and mtime — for `settle` seconds, so a half-copied upload is never read
/// (and never hashed, probed or rejected as broken while it grows).
///
/// "Stood still" is either seen unchanged by this worker for `settle` seconds, or an mtime at least
/// `settle` seconds old at the first sight (files that were there before the worker started are
/// taken at once). The mtime alone is not trusted for a file this worker saw change: on a shared
/// filesystem the mtime comes from another host's clock.
///
/// A file that is not settled does not count as gone: a known file being rewritten keeps its
/// current record (and its results) until the rewrite has settled, and a new one is simply not
/// there yet.
public final class InputSettling: @unchecked Sendable {
    // @unchecked: used from the engine's loop only (one caller at a time).
    public let settle: TimeInterval
    private var seen: [String: (size: Int64, mtime: Double, since: Date)] = [:]

    public init(settle: TimeInterval) { self.settle = settle }

    /// The scan as the ledger should see it now, and when the next unsettled file will have
    /// settled (nil: none is waiting).
    public func filter(_ scan: [DiscoveredFile], known: [String: SourceRecord], now: Date = Date()) -> (files: [DiscoveredFile], nextSettled: Date?) {
        guard settle > 0 else { return (scan, nil) }
        var files: [DiscoveredFile] = []
        var next: Date?
        var present = Set<String>()
        for file in scan {
            present.insert(file.relativePath)
            let record = known[file.relativePath]
            if let record, record.goneAt == nil, record.size == file.size, record.mtime == file.mtime {
                // Unchanged since the ledger took it: nothing to wait for.
                seen[file.relativePath] = nil
                files.append(file)
                continue
            }
            let since: Date
            if let earlier = seen[file.relativePath], earlier.size == file.size, earlier.mtime == file.mtime {
                since = earlier.since
            } else {
                // First sight (or it changed): old enough by its mtime, or from now on.
                let firstSight = seen[file.relativePath] == nil
                since = firstSight && now.timeIntervalSince1970 - file.mtime >= settle ? now.addingTimeInterval(-settle) : now
                seen[file.relativePath] = (file.size, file.mtime, since)
            }
            if now.timeIntervalSince(since) >= settle {
                seen[file.relativePath] = nil
                files.append(file)
            } else {
                let ready = since.addingTimeInterval(settle)
                next = min(next ?? ready, ready)
                if let record, record.goneAt == nil {
                    // Keep what the ledger knows until the new content has settled.
                    files.append(DiscoveredFile(relativePath: record.relativePath, size: record.size, mtime: record.mtime,
                                                contentHash: record.contentHash, problem: record.problem))
                }
            }
        }
        seen = seen.filter { present.contains($0.key) }
        return (files, next)
    }
}
