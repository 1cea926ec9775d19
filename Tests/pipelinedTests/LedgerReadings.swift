import Foundation
import GRDB
import PipelineTestSupport

/// What the crash and chaos tests compare, read the same way from a SQLite ledger (GRDB) and a
/// PostgreSQL one (psql): one SQL text each, producing the same lines from both.
enum LedgerReadings {
    /// "stage item<TAB>state: reason" of every current decision (an item: its source path, and its
    /// scene and segment for a clip).
    static let decisionsSQL = """
        SELECT r.stage || ' ' || s.relativePath || COALESCE(' scene ' || c.sceneIndex || ' segment ' || c.segmentIndex, '')
               || '\t' || r.state || ': ' || COALESCE(r.reason, '')
        FROM stageResult r JOIN source s ON s.id = r.sourceId LEFT JOIN clip c ON c.id = r.clipId
        WHERE NOT r.superseded AND r.state IN ('done', 'rejected', 'failed')
        """
    /// "path scene/segment start..<end" of every clip.
    static let clipsSQL = """
        SELECT s.relativePath || ' ' || c.sceneIndex || '/' || c.segmentIndex || ' ' || c.startFrame || '..<' || c.endFrame
        FROM clip c JOIN source s ON s.id = c.sourceId ORDER BY s.relativePath, c.sceneIndex, c.segmentIndex
        """
    /// The trace lines ("stage<TAB>item<TAB>fingerprint", `PIPELINED_TRACE`) of every committed decision.
    static let committedSQL = "SELECT stage || '\t' || itemKey || '\t' || fingerprint FROM stageResult WHERE state IN ('done', 'rejected')"

    static func keyed(_ lines: [String]) -> [String: String] {
        Dictionary(lines.map { line in
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }, uniquingKeysWith: { a, _ in a })
    }

    /// The lines `sql` selects from the output directory's SQLite ledger; none while the database
    /// or its tables do not exist yet (a kill can land before the first migration committed).
    static func sqliteLines(_ out: URL, _ sql: String) throws -> [String] {
        let path = out.appendingPathComponent("pipelined.sqlite").path
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let db = try DatabaseQueue(path: path)
        return try db.read { db in
            guard try db.tableExists("stageResult") else { return [] }
            return try String.fetchAll(db, sql: sql)
        }
    }

    static func postgresLines(_ server: PostgresServer, _ sql: String) throws -> [String] {
        try server.psql(sql, database: "ledger").split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    static func decisions(sqlite out: URL) throws -> [String: String] { keyed(try sqliteLines(out, decisionsSQL)) }
    static func decisions(_ server: PostgresServer) throws -> [String: String] { keyed(try postgresLines(server, decisionsSQL)) }
    static func clips(sqlite out: URL) throws -> [String] { try sqliteLines(out, clipsSQL) }
    static func clips(_ server: PostgresServer) throws -> [String] { try postgresLines(server, clipsSQL) }
    static func committed(sqlite out: URL) throws -> Set<String> { Set(try sqliteLines(out, committedSQL)) }
    static func committed(_ server: PostgresServer) throws -> Set<String> { Set(try postgresLines(server, committedSQL)) }
}
