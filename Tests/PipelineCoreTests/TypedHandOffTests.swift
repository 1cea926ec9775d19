import Foundation
import GRDB
@testable import PipelineCore
import PipelineTestSupport
import Testing

/// Issue 19, part 1: what stages hand on lives in typed tables (migration v3), and a database the
/// previous release wrote is translated into them without redoing anything.
@Suite struct TypedHandOffTests {
    /// `Tests/Data/v2-release.sqlite`: the database of a real run of the release before v3 (schema
    /// v2), made by running the pipeline twice over four generated sources (`speaker_a` +4 and
    /// `sub/speaker_b` −3 talking clips, `gap` a face clip with faceless frames 70–89, so two aligned
    /// pieces in one clip, and `nobody` without a face) with `segment.materialize = true`, one scene
    /// per source, first `sync.min_confidence = -1` (everything kept and published), then 0.45
    /// (speaker_a kept, the others rejected from the stored scores): so it holds current and
    /// history rows of every stage, two pieces scored in one result (one of them published) and
    /// materialised copies.
    static let releaseDatabase = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Data/v2-release.sqlite").standardizedFileURL

    /// A private copy of the release database (the committed file is never opened for writing).
    static func copyOfRelease() throws -> (root: URL, path: String) {
        let root = try Fixtures.temporaryDirectory("v2-release")
        let path = root.appendingPathComponent("pipelined.sqlite").path
        try FileManager.default.copyItem(atPath: releaseDatabase.path, toPath: path)
        return (root, path)
    }

    /// What the v2 metrics say, read with JSONSerialization (independently of the migration's
    /// decoder): per result, its pieces as (frames, video, landmarks, offset, confidence, quality,
    /// kept, reason, published, faceSize).
    struct Expected: Hashable {
        var stage: String, itemKey: String, start: Int, end: Int, video: String, landmarks: String
        var offset: Int? = nil, confidence: Double? = nil, quality: Double? = nil, kept: Bool = true, reason: String? = nil
        var published: String? = nil, faceSize: Double? = nil
    }

    static func expectations(_ db: Database) throws -> [Int64: [Expected]] {
        var result: [Int64: [Expected]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, stage, itemKey, metrics FROM stageResult WHERE stage IN ('align', 'sync', 'quality', 'publish') AND metrics IS NOT NULL") {
            let stage: String = row["stage"], metrics: String = row["metrics"]
            let object = try JSONSerialization.jsonObject(with: Data(metrics.utf8)) as! [String: Any]
            result[row["id"]] = (object["pieces"] as? [[String: Any]] ?? []).map { p in
                let frames = p["frames"] as! [Int]
                let sync = p["sync"] as? [String: Any]
                let kept = p["kept"] as? Bool ?? true
                return Expected(stage: stage, itemKey: row["itemKey"], start: frames[0], end: frames[1], video: p["video"] as! String,
                                landmarks: p["landmarks"] as! String, offset: stage == "align" ? nil : sync?["offset"] as? Int,
                                confidence: stage == "sync" ? sync?["confidence"] as? Double : nil,
                                quality: stage == "quality" ? p["quality"] as? Double : nil, kept: stage == "align" ? true : kept,
                                reason: stage == "align" || kept ? nil : p["reason"] as? String,
                                published: p["published"] as? String, faceSize: stage == "publish" ? p["faceSize"] as? Double : nil)
            }
        }
        return result
    }

    /// The same, read back from the typed tables after the migration.
    static func typed(_ db: Database) throws -> [Int64: [Expected]] {
        var result: [Int64: [Expected]] = [:]
        let results = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, stage, itemKey FROM stageResult").map { ($0["id"] as Int64, ($0["stage"] as String, $0["itemKey"] as String)) })
        let pieces = Dictionary(uniqueKeysWithValues: try AlignedPieceRecord.fetchAll(db).map { ($0.id!, $0) })
        func add(_ resultId: Int64, _ pieceId: Int64, _ fill: (inout Expected) -> Void) {
            let (stage, item) = results[resultId]!, p = pieces[pieceId]!
            var e = Expected(stage: stage, itemKey: item, start: p.startFrame, end: p.endFrame, video: p.video, landmarks: p.landmarks, kept: true)
            fill(&e)
            result[resultId, default: []].append(e)
        }
        for p in try AlignedPieceRecord.order(Column("resultId"), Column("ordinal")).fetchAll(db) { add(p.resultId, p.id!) { _ in } }
        for s in try SyncScoreRecord.fetchAll(db) { add(s.resultId, s.pieceId) { $0.offset = s.offset; $0.confidence = s.confidence; $0.kept = s.kept; $0.reason = s.reason } }
        for q in try QualityScoreRecord.fetchAll(db) { add(q.resultId, q.pieceId) { $0.quality = q.score; $0.kept = q.kept; $0.reason = q.reason } }
        for c in try PublishedClipRecord.fetchAll(db) { add(c.resultId, c.pieceId) { $0.published = c.path; $0.offset = c.offset; $0.faceSize = c.faceSize } }
        return result
    }

    /// Quality and publish entries carry the sync measurement in v2; the typed rows keep only what
    /// each stage decided. Compare what each table holds.
    /// (Doubles to 12 digits: Foundation's JSONSerialization on Linux reads the last digit of some
    /// numbers differently from JSONDecoder.)
    static func comparable(_ e: [Int64: [Expected]]) -> [Int64: Set<Expected>] {
        func rounded(_ x: Double?) -> Double? { x.map { Double(String(format: "%.12g", $0))! } }
        return e.mapValues { list in
            Set(list.map { x in
                var x = x
                x.confidence = rounded(x.confidence); x.quality = rounded(x.quality); x.faceSize = rounded(x.faceSize)
                if x.stage == "quality" { x.offset = nil }
                if x.stage == "publish" { x.kept = true; x.reason = nil }
                if x.stage == "sync" || x.stage == "quality" { x.published = nil }
                return x
            })
        }.filter { !$0.value.isEmpty }
    }

    @Test func theReleaseDatabaseIsTranslatedRowForRow() throws {
        let (root, path) = try Self.copyOfRelease()
        defer { try? FileManager.default.removeItem(at: root) }
        let (expected, before) = try DatabaseQueue(path: path).read { db in
            #expect(try Migrations.migrator.appliedIdentifiers(db) == ["v1-initial", "v2-output-stems-problems-retired-artifacts"])
            return (try Self.expectations(db), try Row.fetchAll(db, sql: "SELECT id, stage, itemKey, state, superseded, fingerprint FROM stageResult ORDER BY id"))
        }
        #expect(expected.values.contains { $0.count == 2 && $0[0].stage == "sync" }, "the fixture has two pieces scored in one result")
        let store = try PipelineStore(path: path)
        let (after, typed) = try store.writer.read { db in
            (try Row.fetchAll(db, sql: "SELECT id, stage, itemKey, state, superseded, fingerprint FROM stageResult ORDER BY id"), try Self.typed(db))
        }
        #expect(after == before, "the migration changed a result's state")
        #expect(Self.comparable(typed) == Self.comparable(expected))
        // The files each result owns are those the release listed (`artifacts(of:)` of its stages).
        var live = Set<String>(), history = Set<String>()
        for row in try store.writer.read({ try Row.fetchAll($0, sql: "SELECT id, stage, metrics, artifactPath, superseded FROM stageResult") }) {
            let id: Int64 = row["id"], stage: String = row["stage"]
            let object = (row["metrics"] as String?).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
            let pieces = object["pieces"] as? [[String: Any]] ?? []
            let listed: [String] = switch stage {
            case "align": pieces.flatMap { [$0["video"] as! String, $0["landmarks"] as! String] }
            case "publish": pieces.compactMap { $0["published"] as? String }
            case "segment": object["materialized"] as? [String] ?? []
            case "normalize": (row["artifactPath"] as String?).map { [$0] } ?? []
            default: []
            }
            #expect(Set(try store.ownedFiles(result: id)) == Set(listed), "result \(id) (\(stage))")
            if row["superseded"] as Bool { history.formUnion(listed) } else { live.formUnion(listed) }
        }
        #expect(try store.ownedFiles(result: 0).isEmpty)
        // What the clean-up would remove is what the release would have removed.
        let unowned = try store.unownedArtifacts()
        #expect(unowned == history.subtracting(live).sorted(), "\(unowned)")
        #expect(!unowned.contains { live.contains($0) })
    }

    /// A decided result whose hand-off cannot be read (damaged JSON) is made again, with what was
    /// built on it; nothing else changes.
    @Test func anUnreadableHandOffIsMadeAgain() throws {
        let (root, path) = try Self.copyOfRelease()
        defer { try? FileManager.default.removeItem(at: root) }
        let (damaged, item) = try DatabaseQueue(path: path).write { db -> (Int64, String) in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT id, itemKey FROM stageResult WHERE stage = 'sync' AND superseded = 0 AND state = 'done'"))
            try db.execute(sql: "UPDATE stageResult SET metrics = '{\"pieces\": [' WHERE id = ?", arguments: [row["id"]])
            return (row["id"], row["itemKey"])
        }
        let before = try DatabaseQueue(path: path).read { db in
            try Row.fetchAll(db, sql: "SELECT id, stage, itemKey, superseded FROM stageResult ORDER BY id")
        }
        let store = try PipelineStore(path: path)
        let after = try store.writer.read { db in try Row.fetchAll(db, sql: "SELECT id, stage, itemKey, superseded FROM stageResult ORDER BY id") }
        for (old, new) in zip(before, after) {
            let redo = (old["id"] as Int64) == damaged || ((old["itemKey"] as String) == item && ["quality", "publish"].contains(old["stage"] as String))
            #expect((new["superseded"] as Bool) == (redo || old["superseded"] as Bool), "\(old) → \(new)")
        }
        #expect(try store.writer.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM syncScore WHERE resultId = ?", arguments: [damaged]) } == 0)
    }

    /// Stage ids are checked text: a row of an unknown stage is refused by the database itself.
    @Test func stageIdsAreChecked() throws {
        let store = try PipelineStore.inMemory()
        try store.writer.write { db in
            try db.execute(sql: "INSERT INTO source (id, relativePath, size, mtime, contentHash, discoveredAt) VALUES (1, 'a.mp4', 1, 1, 'h', 0)")
            try db.execute(sql: "INSERT INTO stageResult (stage, sourceId, itemKey, fingerprint, state) VALUES ('align', 1, 's1', 'f', 'done')")
            #expect(throws: DatabaseError.self) {
                try db.execute(sql: "INSERT INTO stageResult (stage, sourceId, itemKey, fingerprint, state) VALUES ('aling', 1, 's1', 'f', 'done')")
            }
            #expect(throws: DatabaseError.self) { try db.execute(sql: "UPDATE stageResult SET stage = 'publsh'") }
        }
        #expect(Set(StageID.allCases.map(\.rawValue)) == Set(TypedHandOffMigration.stageIds))
    }

    /// Recording a result again keeps the rows of unchanged pieces (and the scores measured on
    /// them), drops changed ones with their scores, and retires the files no longer named.
    @Test func recordingAgainKeepsUnchangedPieces() throws {
        let store = try PipelineStore.inMemory()
        try store.writer.write { db in
            try db.execute(sql: "INSERT INTO run (id, startedAt, heartbeatAt, host, pid, version, status) VALUES (1, 0, 0, 'h', 1, 't', 'running')")
            try db.execute(sql: "INSERT INTO source (id, relativePath, size, mtime, contentHash, discoveredAt) VALUES (1, 'a.mp4', 1, 1, 'h', 0)")
            try db.execute(sql: "INSERT INTO clip (id, sourceId, sceneIndex, segmentIndex, startFrame, endFrame) VALUES (1, 1, 0, 0, 0, 200)")
        }
        func claim(_ stage: String) throws -> StageResultRecord {
            // A decided result is claimed again once it is history (files lost, settings A → B → A).
            try store.writer.write { db in try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE stage = ?", arguments: [stage]) }
            return try #require(try store.claimWork(stage: stage, sourceId: 1, clipId: 1, itemKey: "c1", fingerprint: "f", run: 1, maxAttempts: 3))
        }
        let a = AlignedPieceRecord(ordinal: 0, frames: 0..<80, video: "aligned/a_p0.mp4", landmarks: "aligned/a_p0.landmarks")
        let b = AlignedPieceRecord(ordinal: 1, frames: 100..<200, video: "aligned/a_p1.mp4", landmarks: "aligned/a_p1.landmarks")
        let align = try claim("align")
        try store.recordOutcome(align, RecordedOutcome(state: .done, seconds: 1, handOn: HandOn(pieces: [a, b])), downstreamStages: [])
        let first = try store.alignedPieces(result: align.id!)
        #expect(first.map(\.frames) == [0..<80, 100..<200])
        let sync = try claim("sync")
        try store.recordOutcome(sync, RecordedOutcome(state: .done, seconds: 1, handOn: HandOn(syncScores: first.map {
            SyncScoreRecord(pieceId: $0.id!, scoreKey: "k", offset: 1, confidence: 2, curve: [0, 1], kept: true, reason: nil)
        })), downstreamStages: [])

        // Align again: piece 0 unchanged, piece 1 now ends earlier (another file content).
        var b2 = b
        b2.endFrame = 150
        let again = try claim("align")
        #expect(again.id == align.id)
        try store.recordOutcome(again, RecordedOutcome(state: .done, seconds: 1, handOn: HandOn(pieces: [a, b2])), downstreamStages: [])
        let second = try store.alignedPieces(result: align.id!)
        #expect(second[0].id == first[0].id && second[1].id != first[1].id)
        #expect(try store.syncScores(result: sync.id!).map(\.pieceId) == [first[0].id!], "the score of the changed piece went with it")
        // The replaced piece's files were retired, but its successor names them: they stay.
        #expect(try store.unownedArtifacts().isEmpty)

        // A failure hands on nothing: its pieces and the scores on them go, their files are retired.
        let failing = try claim("align")
        try store.recordOutcome(failing, RecordedOutcome(state: .failed, reason: "x", seconds: 1), downstreamStages: [])
        #expect(try store.alignedPieces(result: align.id!).isEmpty)
        #expect(try store.syncScores(result: sync.id!).isEmpty)
        #expect(try store.unownedArtifacts() == ["aligned/a_p0.landmarks", "aligned/a_p0.mp4", "aligned/a_p1.landmarks", "aligned/a_p1.mp4"])
    }
}
