import GRDB

/// The schema, as named append-only migrations.
///
/// Rule: a migration that has shipped is never edited; a change is a new migration. Why: this
/// database is the resume state of every user's dataset, and erasing or rewriting it loses days of
/// work. Migrations use string names only, never record types, because they describe the past.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-initial") { db in
            try db.create(table: "run") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("startedAt", .datetime).notNull()
                t.column("finishedAt", .datetime)
                t.column("heartbeatAt", .datetime).notNull()
                t.column("host", .text).notNull()
                t.column("pid", .integer).notNull()
                t.column("version", .text).notNull()
                t.column("status", .text).notNull().check { ["running", "finished", "interrupted"].contains($0) }
                t.column("counts", .text)
            }
            try db.create(table: "source") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("relativePath", .text).notNull().unique()
                t.column("size", .integer).notNull()
                t.column("mtime", .double).notNull()
                t.column("contentHash", .text).notNull()
                t.column("discoveredAt", .datetime).notNull()
                t.column("goneAt", .datetime)
                t.column("probe", .text)
                t.column("durationSeconds", .double)
            }
            try db.create(table: "clip") { t in
                t.autoIncrementedPrimaryKey("id")
                t.belongsTo("source", onDelete: .cascade).notNull()
                t.column("sceneIndex", .integer).notNull()
                t.column("segmentIndex", .integer).notNull()
                t.column("startFrame", .integer).notNull()
                t.column("endFrame", .integer).notNull()
                t.uniqueKey(["sourceId", "sceneIndex", "segmentIndex"])
                t.check(sql: "endFrame > startFrame AND startFrame >= 0")
            }
            try db.create(table: "analysis") { t in
                t.belongsTo("source", onDelete: .cascade).notNull()
                t.column("kind", .text).notNull()
                t.column("fingerprint", .text).notNull()
                t.column("data", .blob).notNull()
                t.primaryKey(["sourceId", "kind"])
            }
            try db.create(table: "stageResult") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("stage", .text).notNull()
                t.belongsTo("source", onDelete: .cascade).notNull()
                t.belongsTo("clip", onDelete: .cascade)
                t.column("itemKey", .text).notNull()
                t.column("fingerprint", .text).notNull()
                t.column("state", .text).notNull().check { ["pending", "running", "done", "rejected", "failed"].contains($0) }
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("reason", .text)
                t.column("metrics", .text)
                t.column("artifactPath", .text)
                t.column("startedAt", .datetime)
                t.column("finishedAt", .datetime)
                t.column("seconds", .double)
                t.belongsTo("run")
                t.column("leaseExpiresAt", .datetime)
                t.column("nextAttemptAt", .datetime)
                t.column("superseded", .boolean).notNull().defaults(to: false)
                t.uniqueKey(["stage", "itemKey", "fingerprint"])
            }
            try db.create(index: "stageResult_current", on: "stageResult", columns: ["stage", "superseded", "state"])
        }
        m.registerMigration("v2-output-stems-problems-retired-artifacts") { db in
            try db.alter(table: "source") { t in
                t.add(column: "problem", .text)
                t.add(column: "outputStem", .text)
            }
            // Files that rows deleted from the database (a changed source's old results, clips a new
            // segmentation dropped) still own; the end of a run deletes them unless a current row
            // names them again.
            try db.create(table: "retiredArtifact") { t in
                t.column("path", .text).notNull().primaryKey()
                t.column("retiredAt", .datetime).notNull()
            }
            // Give every source its output stem in discovery order: the first keeps the name its
            // files already have; a later source that shared it (talk.mp4 / talk.mov) had its files
            // overwritten by the other's, so its results from stage 5 on are made history and redone
            // under its own name (what they wrote stays live while the other source names it).
            var taken = Set<String>()
            for row in try Row.fetchAll(db, sql: "SELECT id, relativePath FROM source ORDER BY id") {
                let id: Int64 = row["id"], path: String = row["relativePath"]
                let stem = OutputNaming.stem(for: path, taken: taken)
                taken.insert(stem)
                try db.execute(sql: "UPDATE source SET outputStem = ? WHERE id = ?", arguments: [stem, id])
                if stem != OutputNaming.referenceStem(of: path) {
                    try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE sourceId = ? AND stage IN ('align', 'sync', 'quality', 'publish')",
                                   arguments: [id])
                }
            }
            try db.create(index: "source_outputStem", on: "source", columns: ["outputStem"], unique: true)
        }
        m.registerMigration("v3-typed-handoff") { db in try TypedHandOffMigration.apply(db) }
        // The work queue: one row per (stage, item, fingerprint) a worker may claim now. Rows are
        // added when an item becomes claimable (its upstream result committed done, in the same
        // transaction; a run's planning pass; a reclaimed or failed item) and removed when it is
        // claimed, so a claim reads a few rows of an index instead of every item of every stage.
        // It starts empty: the first run's planning pass fills it from the results.
        m.registerMigration("v4-work-queue") { db in
            try db.execute(sql: """
                CREATE TABLE workQueue (
                    stage TEXT NOT NULL CHECK (stage IN ('broken', 'normalize', 'scenes', 'segment', 'align', 'sync', 'quality', 'publish')),
                    fingerprint TEXT NOT NULL,
                    itemKey TEXT NOT NULL,
                    sourceId INTEGER NOT NULL REFERENCES source(id) ON DELETE CASCADE,
                    clipId INTEGER REFERENCES clip(id) ON DELETE CASCADE,
                    sceneIndex INTEGER NOT NULL,
                    segmentIndex INTEGER NOT NULL,
                    interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
                    notBefore DATETIME,
                    PRIMARY KEY (stage, itemKey, fingerprint)
                );
                CREATE INDEX workQueue_order ON workQueue (stage, fingerprint, interrupted, sourceId, sceneIndex, segmentIndex);
                CREATE INDEX workQueue_source ON workQueue (sourceId);
                CREATE INDEX workQueue_clip ON workQueue (clipId);
                """)
        }
        // v5: the inference devices a worker runs its model-backed stages on (`pipelined work
        // --devices`), comma-separated, for `status`; NULL for a worker without device lanes.
        m.registerMigration("v5-run-devices") { db in
            try db.execute(sql: "ALTER TABLE run ADD COLUMN devices TEXT")
        }
        return m
    }
}
