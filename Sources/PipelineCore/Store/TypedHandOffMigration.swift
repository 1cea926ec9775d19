import Foundation
import GRDB

/// Migration v3: what one stage hands the next moves out of `stageResult.metrics` JSON into tables
/// of its own, with foreign keys; stage ids become checked text.
///
/// - `alignedPiece`: the face runs stage 5 kept (frame range, aligned clip, landmark sidecar),
///   numbered within their `align` result.
/// - `syncScore`, `qualityScore`: per piece, the score a `sync` / `quality` result measured (under
///   `scoreKey`, the hash of the method and everything upstream) and its verdict.
/// - `publishedClip`: per piece, the clip stage 8 wrote and the offset it applied.
/// - `sideOutput`: copies a result wrote only for the user (materialised normalised sources and
///   segments), which nothing downstream reads.
/// - `ownedFile`: a view over all four, the files each result owns and whether later stages read
///   them (the aligned clips): the clean-up and the check for missing files read it instead of
///   asking every stage to decode its metrics.
///
/// Backfill: every existing result is translated from the metrics JSON that releases up to v2
/// wrote (decoded here with structures that describe that format, never with today's types). A
/// decided result whose hand-off cannot be read or placed becomes history, so the next run makes it
/// again: the one outcome that is always right. Everything else resumes untouched.
enum TypedHandOffMigration {
    /// Stage ids `stageResult.stage` may hold (`StageID`; spelled out here because a migration
    /// describes the schema as it was when it shipped).
    static let stageIds = ["broken", "normalize", "scenes", "segment", "align", "sync", "quality", "publish"]

    static func apply(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE alignedPiece (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                resultId INTEGER NOT NULL REFERENCES stageResult(id) ON DELETE CASCADE,
                ordinal INTEGER NOT NULL CHECK (ordinal >= 0),
                startFrame INTEGER NOT NULL,
                endFrame INTEGER NOT NULL,
                video TEXT NOT NULL CHECK (video <> ''),
                landmarks TEXT NOT NULL CHECK (landmarks <> ''),
                UNIQUE (resultId, ordinal),
                CHECK (endFrame > startFrame AND startFrame >= 0)
            );
            CREATE TABLE syncScore (
                resultId INTEGER NOT NULL REFERENCES stageResult(id) ON DELETE CASCADE,
                pieceId INTEGER NOT NULL REFERENCES alignedPiece(id) ON DELETE CASCADE,
                scoreKey TEXT NOT NULL,
                "offset" INTEGER,
                confidence REAL,
                curve TEXT,
                kept BOOLEAN NOT NULL CHECK (kept IN (0, 1)),
                reason TEXT,
                PRIMARY KEY (resultId, pieceId),
                CHECK (("offset" IS NULL) = (confidence IS NULL) AND ("offset" IS NULL) = (curve IS NULL)),
                CHECK (kept = 0 OR "offset" IS NOT NULL),
                CHECK (kept = 1 OR reason IS NOT NULL)
            );
            CREATE INDEX syncScore_piece ON syncScore (pieceId, scoreKey);
            CREATE TABLE qualityScore (
                resultId INTEGER NOT NULL REFERENCES stageResult(id) ON DELETE CASCADE,
                pieceId INTEGER NOT NULL REFERENCES alignedPiece(id) ON DELETE CASCADE,
                scoreKey TEXT NOT NULL,
                score REAL NOT NULL,
                frameScores TEXT NOT NULL,
                kept BOOLEAN NOT NULL CHECK (kept IN (0, 1)),
                reason TEXT,
                PRIMARY KEY (resultId, pieceId),
                CHECK (kept = 1 OR reason IS NOT NULL)
            );
            CREATE INDEX qualityScore_piece ON qualityScore (pieceId, scoreKey);
            CREATE TABLE publishedClip (
                resultId INTEGER NOT NULL REFERENCES stageResult(id) ON DELETE CASCADE,
                pieceId INTEGER NOT NULL REFERENCES alignedPiece(id) ON DELETE CASCADE,
                path TEXT NOT NULL CHECK (path <> ''),
                "offset" INTEGER NOT NULL,
                faceSize REAL NOT NULL,
                PRIMARY KEY (resultId, pieceId)
            );
            CREATE INDEX publishedClip_path ON publishedClip (path);
            CREATE TABLE sideOutput (
                resultId INTEGER NOT NULL REFERENCES stageResult(id) ON DELETE CASCADE,
                path TEXT NOT NULL CHECK (path <> ''),
                PRIMARY KEY (resultId, path)
            );
            CREATE INDEX alignedPiece_video ON alignedPiece (video);
            CREATE INDEX stageResult_item ON stageResult (stage, itemKey);
            CREATE VIEW ownedFile (resultId, path, feedsLaterStages) AS
                SELECT resultId, video, 1 FROM alignedPiece
                UNION ALL SELECT resultId, landmarks, 1 FROM alignedPiece
                UNION ALL SELECT resultId, path, 0 FROM publishedClip
                UNION ALL SELECT resultId, path, 0 FROM sideOutput;
            """)
        // A CHECK cannot be added to a table SQLite already has without copying it, which for a
        // large dataset's ledger would rewrite gigabytes of history: triggers check instead.
        let known = stageIds.map { "'\($0)'" }.joined(separator: ", ")
        for event in ["INSERT", "UPDATE OF stage"] {
            try db.execute(sql: """
                CREATE TRIGGER stageResult_stage_\(event == "INSERT" ? "insert" : "update") BEFORE \(event) ON stageResult
                WHEN NEW.stage NOT IN (\(known))
                BEGIN SELECT RAISE(ABORT, 'stageResult.stage must be a stage id'); END
                """)
        }
        try backfill(db)
    }

    // MARK: The v2 metrics format

    /// A piece as align (`pieces`), sync, quality and publish (`pieces` of a `ScoredPieces`) wrote it.
    private struct V2Piece: Decodable {
        var frames: [Int]
        var video: String?
        var landmarks: String?
        var sync: V2Sync?
        var quality: Double?
        var qualityFrames: [Double]?
        var kept: Bool?
        var reason: String?
        var published: String?
        var faceSize: Double?
    }
    private struct V2Sync: Decodable { var offset: Int; var confidence: Double; var scores: [Double] }
    private struct V2Metrics: Decodable {
        var pieces: [V2Piece]?
        var scoreKey: String?
        var materialized: [String]?
    }

    private struct Row2 { var id: Int64; var stage: String; var itemKey: String; var state: String; var superseded: Bool; var metrics: String?; var artifactPath: String? }

    private static func backfill(_ db: Database) throws {
        let rows = try Row.fetchAll(db, sql: """
            SELECT id, stage, itemKey, state, superseded, metrics, artifactPath FROM stageResult
            WHERE stage IN ('normalize', 'segment', 'align', 'sync', 'quality', 'publish') ORDER BY id
            """).map { Row2(id: $0["id"], stage: $0["stage"], itemKey: $0["itemKey"], state: $0["state"], superseded: $0["superseded"],
                            metrics: $0["metrics"], artifactPath: $0["artifactPath"]) }
        let decoder = JSONDecoder()
        func decode(_ row: Row2) -> V2Metrics? {
            guard let text = row.metrics else { return nil }
            return try? decoder.decode(V2Metrics.self, from: Data(text.utf8))
        }
        /// A decided result whose hand-off could not be carried over is made again by the next run
        /// (with every later stage's result of the item, which built on it).
        var unreadable: [Row2] = []
        func decided(_ row: Row2) -> Bool { row.state == "done" || row.state == "rejected" }

        // Align first: every later table points at its pieces. Pieces by item, newest result first.
        var piecesOfItem: [String: [(id: Int64, frames: [Int], video: String, current: Bool)]] = [:]
        for row in rows where row.stage == "align" {
            guard let metrics = decode(row) else {
                if decided(row) { unreadable.append(row) }
                continue
            }
            let pieces = (metrics.pieces ?? []).filter { $0.video != nil && $0.landmarks != nil }
            guard pieces.allSatisfy({ $0.frames.count == 2 && $0.frames[0] >= 0 && $0.frames[1] > $0.frames[0] }) else {
                if decided(row) { unreadable.append(row) }
                continue
            }
            for (ordinal, piece) in pieces.enumerated() {
                try db.execute(sql: "INSERT INTO alignedPiece (resultId, ordinal, startFrame, endFrame, video, landmarks) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [row.id, ordinal, piece.frames[0], piece.frames[1], piece.video, piece.landmarks])
                piecesOfItem[row.itemKey, default: []].insert((db.lastInsertedRowID, piece.frames, piece.video!, !row.superseded), at: 0)
            }
        }
        /// The piece a later stage's entry describes: same item, same aligned file and frames; the
        /// current align result's piece when it has one.
        func piece(_ p: V2Piece, item: String) -> Int64? {
            let candidates = (piecesOfItem[item] ?? []).filter { $0.video == p.video && $0.frames == p.frames }
            return (candidates.first(where: \.current) ?? candidates.first)?.id
        }

        for row in rows {
            switch row.stage {
            case "normalize":
                if let path = row.artifactPath, !path.isEmpty {
                    try db.execute(sql: "INSERT OR IGNORE INTO sideOutput (resultId, path) VALUES (?, ?)", arguments: [row.id, path])
                }
            case "segment":
                for path in decode(row)?.materialized ?? [] where !path.isEmpty {
                    try db.execute(sql: "INSERT OR IGNORE INTO sideOutput (resultId, path) VALUES (?, ?)", arguments: [row.id, path])
                }
            case "sync", "quality", "publish":
                guard let metrics = decode(row), let pieces = metrics.pieces else {
                    if decided(row) { unreadable.append(row) }
                    continue
                }
                var complete = true
                for p in pieces {
                    guard let pieceId = piece(p, item: row.itemKey) else { complete = false; continue }
                    let kept = p.kept ?? true
                    let reason = kept ? nil : p.reason
                    switch row.stage {
                    case "sync":
                        guard let scoreKey = metrics.scoreKey, kept ? p.sync != nil : p.reason != nil else { complete = false; continue }
                        try db.execute(sql: """
                            INSERT INTO syncScore (resultId, pieceId, scoreKey, "offset", confidence, curve, kept, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                            """, arguments: [row.id, pieceId, scoreKey, p.sync?.offset, p.sync?.confidence, p.sync.map { json($0.scores) }, kept, reason])
                    case "quality":
                        guard let scoreKey = metrics.scoreKey, let score = p.quality, kept || p.reason != nil else { complete = false; continue }
                        try db.execute(sql: """
                            INSERT INTO qualityScore (resultId, pieceId, scoreKey, score, frameScores, kept, reason) VALUES (?, ?, ?, ?, ?, ?, ?)
                            """, arguments: [row.id, pieceId, scoreKey, score, json(p.qualityFrames ?? []), kept, reason])
                    default:
                        guard let path = p.published else { continue }
                        guard let faceSize = p.faceSize else { complete = false; continue }
                        try db.execute(sql: "INSERT INTO publishedClip (resultId, pieceId, path, \"offset\", faceSize) VALUES (?, ?, ?, ?, ?)",
                                       arguments: [row.id, pieceId, path, p.sync?.offset ?? 0, faceSize])
                    }
                }
                if !complete && decided(row) { unreadable.append(row) }
            default: break
            }
        }
        for row in unreadable where !row.superseded {
            // Made history with what was built on it; its files stay owned by the history row and
            // are collected once nothing current names them.
            try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE id = ?", arguments: [row.id])
            let later = stageIds.drop { $0 != row.stage }.dropFirst()
            guard !later.isEmpty else { continue }
            let marks = later.map { _ in "?" }.joined(separator: ", ")
            try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE itemKey = ? AND stage IN (\(marks))",
                           arguments: StatementArguments([row.itemKey] + Array(later)))
        }
    }

    /// Scores as a JSON array of numbers, the form v3 keeps them in (spelled out here rather than
    /// borrowed from today's records: a migration describes the schema as it shipped).
    private static func json(_ values: [Double]) -> String {
        String(decoding: (try? JSONEncoder().encode(values)) ?? Data("[]".utf8), as: UTF8.self)
    }
}
