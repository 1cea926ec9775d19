import Foundation
import PipelineCore
import PipelineTestSupport
import Testing
@testable import PostgresLedger

/// The PostgreSQL ledger driver against real servers (`PostgresServer`: initdb + pg_ctl on a free
/// loopback port, one cluster per test so that tests run in parallel and a crash stays local).
/// A machine without PostgreSQL fails these tests (PostgresServer says which package to install).
@Suite struct PostgresDatabaseTests {
    // MARK: Migrations

    @Test func migrateIsIdempotentSerializedAndRefusesNewerSchemas() throws {
        let server = try PostgresServer.start(name: "ledger-migrate")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        try db.migrate()
        try db.migrate()
        #expect(try server.psql("SELECT string_agg(identifier, ',' ORDER BY identifier) FROM schemaMigration").trimmed == "pg1-ledger,pg2-run-devices")
        let tables = try server.psql("""
            SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'
            """).trimmed
        #expect(tables == "alignedpiece,analysis,clip,ownedfile,publishedclip,qualityscore,retiredartifact,run,schemamigration,"
                + "sideoutput,source,stageresult,syncscore,workqueue")

        // Four processes' worth of first starts on an empty database at once.
        try server.psql("CREATE DATABASE fresh")
        let url = server.url(database: "fresh")
        let errors = Locked<[String]>([])
        let start = Date()
        onThreads(4) { _ in
            do {
                let db = try PostgresLedgerDatabase(url: url)
                try db.migrate()
            } catch {
                errors.mutate { $0.append("\(error)") }
            }
        }
        print("4 concurrent migrate() calls: \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
        #expect(errors.value == [])
        #expect(try server.psql("SELECT count(*) FROM schemaMigration", database: "fresh").trimmed == "2")

        // A database a newer release migrated further is refused, naming what it does not know.
        try server.psql("INSERT INTO schemaMigration (identifier) VALUES ('pg99-from-the-future')", database: "fresh")
        let fresh = try PostgresLedgerDatabase(url: url)
        let error = #expect(throws: PostgresLedgerError.self) { try fresh.migrate() }
        guard case let .newerSchema(_, unknown) = error else {
            Issue.record("expected newerSchema, got \(String(describing: error))")
            return
        }
        #expect(unknown == ["pg99-from-the-future"])
        print(error!.description)
    }

    @Test func schemaKeepsTheSQLiteConstraints() throws {
        let server = try PostgresServer.start(name: "ledger-schema")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        try db.migrate()
        let now = Date()
        let ids = try db.transaction { s -> (source: Int64, clip: Int64, result: Int64, piece: Int64) in
            let source = try #require(try s.int("""
                INSERT INTO source (relativePath, size, mtime, contentHash, discoveredAt) VALUES (?, ?, ?, ?, ?) RETURNING id
                """, "a/talk.mp4", 1234, 1.5, "hash", now))
            let clip = try #require(try s.int("""
                INSERT INTO clip (sourceId, sceneIndex, segmentIndex, startFrame, endFrame) VALUES (?, 0, 0, 0, 10) RETURNING id
                """, source))
            let result = try #require(try s.int("""
                INSERT INTO stageResult (stage, sourceId, clipId, itemKey, fingerprint, state) VALUES ('align', ?, ?, 'k', 'f', 'done') RETURNING id
                """, source, clip))
            let piece = try #require(try s.int("""
                INSERT INTO alignedPiece (resultId, ordinal, startFrame, endFrame, video, landmarks) VALUES (?, 0, 0, 10, 'v.mp4', 'v.json') RETURNING id
                """, result))
            // A dropped piece without an offset says why; SQLite's CHECK (kept = 0 OR "offset" IS NOT NULL).
            try s.execute("INSERT INTO syncScore (resultId, pieceId, scoreKey, kept, reason) VALUES (?, ?, 'sk', FALSE, 'no sync')", result, piece)
            return (source, clip, result, piece)
        }
        func violation(_ sql: String, _ arguments: [SQLValue]) -> String? {
            do {
                _ = try db.transaction { s in try s.execute(sql, arguments) }
                return nil
            } catch let PostgresLedgerError.query(sqlState, _, _) {
                return sqlState
            } catch {
                return "\(error)"
            }
        }
        // A kept piece has an offset; a dropped one a reason; stage ids are checked; the queue too.
        #expect(violation("UPDATE syncScore SET kept = TRUE WHERE pieceId = ?", [.int(ids.piece)]) == "23514")
        #expect(violation("UPDATE syncScore SET reason = NULL WHERE pieceId = ?", [.int(ids.piece)]) == "23514")
        #expect(violation("UPDATE stageResult SET stage = 'bogus' WHERE id = ?", [.int(ids.result)]) == "23514")
        #expect(violation("INSERT INTO clip (sourceId, sceneIndex, segmentIndex, startFrame, endFrame) VALUES (?, 0, 1, 5, 5)",
                          [.int(ids.source)]) == "23514")
        #expect(violation("INSERT INTO workQueue (stage, fingerprint, itemKey, sourceId, sceneIndex, segmentIndex, interrupted) VALUES ('sync', 'f', 'k', ?, 0, 0, 2)",
                          [.int(ids.source)]) == "23514")
        #expect(violation("INSERT INTO clip (sourceId, sceneIndex, segmentIndex, startFrame, endFrame) VALUES (?, 0, 0, 0, 10)",
                          [.int(ids.source)]) == "23505")
        // The view reads as booleans; deleting the source cascades to everything.
        let owned = try db.transaction { s in try s.rows("SELECT path, feedsLaterStages FROM ownedFile ORDER BY path") }
        #expect(owned.map { $0["path"] } == [.text("v.json"), .text("v.mp4")])
        #expect(owned.map { $0["feedsLaterStages"] } == [.bool(true), .bool(true)])
        let remaining = try db.transaction { s -> Int64? in
            try s.execute("DELETE FROM source WHERE id = ?", ids.source)
            return try s.int("SELECT (SELECT count(*) FROM clip) + (SELECT count(*) FROM stageResult) + (SELECT count(*) FROM syncScore)")
        }
        #expect(remaining == 0)
    }

    // MARK: Values and statements

    @Test func everyValueKindRoundTrips() throws {
        let server = try PostgresServer.start(name: "ledger-values")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        let date = Date(timeIntervalSince1970: 1_767_225_600.123456)
        let rows: [[SQLValue]] = [
            [.int(1), .int(Int64.max), .double(-1.5e300), .text("héllo 'quoted' ? \"x\" 🎉"), .blob(Data([0, 1, 2, 255, 0])), .date(date), .bool(true)],
            [.int(2), .int(Int64.min), .double(0.1), .text(""), .blob(Data()), .date(Date(timeIntervalSince1970: 0)), .bool(false)],
            [.int(3), .null, .null, .null, .null, .null, .null],
        ]
        let back = try db.transaction { s -> [SQLRow] in
            try s.execute("CREATE TABLE kinds (id BIGINT PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, t TEXT, b BYTEA, ts TIMESTAMPTZ, f BOOLEAN)")
            for row in rows {
                #expect(try s.execute("INSERT INTO kinds (id, i, d, t, b, ts, f) VALUES (?, ?, ?, ?, ?, ?, ?)", row) == 1)
            }
            #expect(try s.execute("UPDATE kinds SET f = f WHERE id <= ?", [.int(2)]) == 2)
            return try s.rows("SELECT id, i, d, t, b, ts, f FROM kinds ORDER BY id")
        }
        #expect(back.count == 3)
        for (row, sent) in zip(back, rows) {
            for (column, value) in zip(["id", "i", "d", "t", "b", "ts", "f"], sent) {
                if case let .date(expected) = value {
                    // Microseconds on the server.
                    #expect(abs((row.optionalDate(column) ?? .distantPast).timeIntervalSince(expected)) < 2e-6, "\(column)")
                } else {
                    #expect(row[column] == value, "\(column)")
                }
            }
        }
        // The other types the ledger reads, by their PostgreSQL type.
        let typed = try #require(try db.transaction { s in
            try s.row("""
                SELECT 1::int2 AS a, 2::int4 AS b, 2.5::numeric AS c, 1.5::float4 AS d, 'x'::varchar AS e, 'y'::char(3) AS f,
                       'pg'::name AS g, TIMESTAMP '2020-01-02 03:04:05' AS h, NULL::int AS k, TRUE AS l, count(*) AS m, 'lit' AS n
                """)
        })
        #expect(typed["a"] == .int(1) && typed["b"] == .int(2) && typed["c"] == .double(2.5) && typed["d"] == .double(1.5))
        #expect(typed["e"] == .text("x") && typed["f"] == .text("y  ") && typed["g"] == .text("pg") && typed["n"] == .text("lit"))
        #expect(typed["h"] == .date(Date(timeIntervalSince1970: 1_577_934_245)))
        #expect(typed["k"] == .null && typed["l"] == .bool(true) && typed["m"] == .int(1))
        // An untyped NULL takes its type from the context.
        let null = try db.transaction { s in try s.rows("SELECT coalesce(?, 42::bigint) AS v, ? AS w", [.null, .null]).first }
        #expect(null?["v"] == .int(42) && null?["w"] == .null)
        // The session's clock is the server's.
        let now = try db.transaction { s in s.now }
        #expect(abs(now.timeIntervalSinceNow) < 5)
    }

    @Test func questionMarksInLiteralsAreNotPlaceholders() throws {
        let cases: [(String, String, Int)] = [
            ("SELECT ?, ?", "SELECT $1, $2", 2),
            ("SELECT 'a?b', \"c?\" FROM t WHERE x = ?", "SELECT 'a?b', \"c?\" FROM t WHERE x = $1", 1),
            ("SELECT 'it''s?' || ?", "SELECT 'it''s?' || $1", 1),
            ("SELECT E'\\'?' , ?", "SELECT E'\\'?' , $1", 1),
            ("SELECT $$ ? $$, $tag$ '?' $tag$, ? -- why?\n, ?", "SELECT $$ ? $$, $tag$ '?' $tag$, $1 -- why?\n, $2", 2),
            ("SELECT /* ? /* ? */ ? */ ?", "SELECT /* ? /* ? */ ? */ $1", 1),
            ("SELECT x LIKE'a\\'", "SELECT x LIKE'a\\'", 0),
            ("SELECT $1", "SELECT $1", 0),
        ]
        for (sql, expected, count) in cases {
            let (rewritten, n) = Placeholders.rewrite(sql)
            #expect(rewritten == expected)
            #expect(n == count)
        }

        let server = try PostgresServer.start(name: "ledger-literals")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        let row = try db.transaction { s in
            try s.row("SELECT 'what?' AS a, ? AS b, $$why?$$ AS c, \"q?\" AS d FROM (SELECT 1 AS \"q?\") AS sub -- and ?", "x")
        }
        #expect(row?["a"] == .text("what?"))
        #expect(row?["b"] == .text("x"))
        #expect(row?["c"] == .text("why?"))
        #expect(row?["d"] == .int(1))
        // Too few arguments is the caller's mistake, reported as such (not retried as a protocol error).
        let error = #expect(throws: PostgresLedgerError.self) { try db.transaction { s in try s.execute("SELECT ?, ?", 1) } }
        #expect("\(error!)".contains("2 ? placeholders but 1 arguments"))
    }

    // MARK: Transactions

    @Test func aThrowingBodyRollsBack() throws {
        struct Oops: Error {}
        let server = try PostgresServer.start(name: "ledger-rollback")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        try db.transaction { s in try s.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)") }
        #expect(throws: Oops.self) {
            try db.transaction { s in
                try s.execute("INSERT INTO t (id) VALUES (?)", 1)
                throw Oops()
            }
        }
        #expect(try db.transaction { s in try s.int("SELECT count(*) FROM t") } == 0)
        #expect(try server.psql("SELECT count(*) FROM t").trimmed == "0")
    }

    @Test func constraintViolationsSurfaceWithTheServersMessage() throws {
        let server = try PostgresServer.start(name: "ledger-constraint")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        try db.transaction { s in
            try s.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
            try s.execute("INSERT INTO t (id) VALUES (?)", 1)
        }
        let start = Date()
        let error = #expect(throws: PostgresLedgerError.self) {
            try db.transaction { s in try s.execute("INSERT INTO t (id) VALUES (?)", 1) }
        }
        #expect(Date().timeIntervalSince(start) < 1, "not retried")
        guard case let .query(sqlState, message, sql) = error else {
            Issue.record("expected .query, got \(String(describing: error))")
            return
        }
        #expect(sqlState == "23505")
        #expect(message.contains("duplicate key value violates unique constraint"))
        #expect(sql == "INSERT INTO t (id) VALUES (?)")
        print(error!.description)

        // A body that catches the error and carries on: PostgreSQL has aborted the transaction, so
        // COMMIT rolls back; the error is reported instead of losing the work silently.
        let swallowed = #expect(throws: PostgresLedgerError.self) {
            try db.transaction { s in
                try s.execute("INSERT INTO t (id) VALUES (?)", 2)
                _ = try? s.execute("INSERT INTO t (id) VALUES (?)", 1)
            }
        }
        if case let .query(sqlState, _, _) = swallowed { #expect(sqlState == "23505") } else { Issue.record("got \(String(describing: swallowed))") }
        #expect(try server.psql("SELECT count(*) FROM t").trimmed == "1")
    }

    @Test func serializationFailuresAreRetried() throws {
        let server = try PostgresServer.start(name: "ledger-40001")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        try db.transaction { s in try s.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)") }
        var attempts = 0
        let result = try db.transaction { s -> Int in
            attempts += 1
            try s.execute("INSERT INTO t (id) VALUES (?)", 7)
            if attempts == 1 {
                try s.execute("DO $$ BEGIN RAISE EXCEPTION 'simulated conflict' USING ERRCODE = 'serialization_failure'; END $$")
            }
            return attempts
        }
        #expect(result == 2)
        #expect(try server.psql("SELECT count(*) FROM t").trimmed == "1")
    }

    @Test func aCommitWhoseAnswerIsLostIsResolvedNotRepeated() throws {
        let server = try PostgresServer.start(name: "ledger-commit")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        try db.transaction { s in try s.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)") }

        // Lost after COMMIT succeeded: txid_status says committed; the body does not run again
        // (it would fail: the same id twice).
        db.injectCommitFault(.failAfterCommit)
        var attempts = 0
        try db.transaction { s in
            attempts += 1
            try s.execute("INSERT INTO t (id) VALUES (?)", 1)
        }
        #expect(attempts == 1)

        // Lost before COMMIT reached the server: aborted, so the body runs again.
        db.injectCommitFault(.closeBeforeCommit)
        attempts = 0
        let start = Date()
        try db.transaction { s in
            attempts += 1
            try s.execute("INSERT INTO t (id) VALUES (?)", 2)
        }
        print("commit lost before it was sent: resolved and rerun in \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
        #expect(attempts == 2)
        #expect(try server.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t").trimmed == "1,2")
    }

    @Test func concurrentClaimsSkipLockedRows() throws {
        let server = try PostgresServer.start(name: "ledger-skip")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url())
        try db.transaction { s in
            try s.execute("CREATE TABLE job (id BIGINT PRIMARY KEY, owner TEXT)")
            try s.execute("INSERT INTO job (id) VALUES (1), (2), (3)")
        }
        let claim = "UPDATE job SET owner = ? WHERE id = (SELECT id FROM job WHERE owner IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        let aClaimed = DispatchSemaphore(value: 0), bDone = DispatchSemaphore(value: 0)
        let claimed = Locked<[String: Int64]>([:])
        let errors = Locked<[String]>([])
        onThreads(2) { worker in
            do {
                if worker == 0 {
                    try db.transaction { s in
                        let id = try s.int(claim, "a")
                        claimed.mutate { $0["a"] = id }
                        aClaimed.signal()
                        // Hold the row lock until B has claimed (B would block here without SKIP LOCKED).
                        if bDone.wait(timeout: .now() + 20) == .timedOut { errors.mutate { $0.append("B never finished") } }
                    }
                } else {
                    guard aClaimed.wait(timeout: .now() + 20) == .success else { throw TestFailure("A never claimed") }
                    defer { bDone.signal() }
                    let id = try db.transaction { s in try s.int(claim, "b") }
                    claimed.mutate { $0["b"] = id }
                }
            } catch {
                errors.mutate { $0.append("\(error)") }
                if worker == 0 { aClaimed.signal() } else { bDone.signal() }
            }
        }
        #expect(errors.value == [])
        #expect(claimed.value == ["a": 1, "b": 2])
    }

    // MARK: Advisory locks

    @Test func advisoryLocksAreExclusiveAcrossInstances() throws {
        let server = try PostgresServer.start(name: "ledger-lock")
        defer { try? server.stop() }
        let one = try PostgresLedgerDatabase(url: server.url())
        let two = try PostgresLedgerDatabase(url: server.url())
        for key: Int64 in [0x1234_5678_9ABC_DEF0, -5] {
            let lock = try #require(try one.tryAdvisoryLock(key))
            #expect(lock.isHeld)
            #expect(try two.tryAdvisoryLock(key) == nil)
            #expect(try one.tryAdvisoryLock(key) == nil, "a second session of the same process is refused too")
            lock.release()
            #expect(!lock.isHeld)
            let again = try #require(try two.tryAdvisoryLock(key))
            #expect(again.isHeld)
            again.release()
        }
    }

    // MARK: Failures

    @Test func transactionsSurviveAServerCrashAndLocksReportTheirLoss() throws {
        let server = try PostgresServer.start(name: "ledger-crash")
        defer { try? server.stop() }
        let db = try PostgresLedgerDatabase(url: server.url(), retryFor: 60)
        try db.migrate()
        try db.transaction { s in try s.execute("CREATE TABLE probe (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)") }
        let lock = try #require(try db.tryAdvisoryLock(99))
        #expect(lock.isHeld)
        func insert() throws -> Int64? {
            try db.transaction { s in
                try s.execute("INSERT INTO probe DEFAULT VALUES")
                return try s.int("SELECT count(*) FROM probe")
            }
        }
        #expect(try insert() == 1)

        // Crash and restart: the pooled connection is dead; the transaction is retried on a new one.
        try server.crash()
        try server.start()
        var start = Date()
        #expect(try insert() == 2)
        print("first transaction after crash + restart: \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
        #expect(!lock.isHeld, "a restart loses session locks")
        let other = try PostgresLedgerDatabase(url: server.url())
        let taken = try #require(try other.tryAdvisoryLock(99))
        taken.release()

        // Crash, and the transaction starts while the server is still down: retried until it is back.
        try server.crash()
        let restarted = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 1.5)
            try? server.start()
            restarted.signal()
        }
        start = Date()
        #expect(try insert() == 3)
        print("transaction issued while the server was down 1.5 s: \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
        restarted.wait()

        // The singleton jobs' section, asked for while the server is down, waits for it as well.
        try server.crash()
        let back = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 1.5)
            try? server.start()
            back.signal()
        }
        start = Date()
        #expect(try PostgresExclusiveSection(database: db).run { try insert() } == 4)
        print("exclusive section asked for while the server was down 1.5 s: \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
        back.wait()

        // A server that stays down: given up after retryFor, as .unavailable.
        let impatient = try PostgresLedgerDatabase(url: server.url(), retryFor: 1)
        try server.crash()
        start = Date()
        let error = #expect(throws: PostgresLedgerError.self) { try impatient.transaction { s in try s.int("SELECT 1") } }
        print("gave up after \(String(format: "%.3f", Date().timeIntervalSince(start))) s: \(error.map { "\($0)" } ?? "-")")
        guard case .unavailable = error else {
            Issue.record("expected .unavailable, got \(String(describing: error))")
            return
        }
        try server.start()
    }

    @Test func anUnreachableServerIsReportedQuicklyWithoutThePassword() throws {
        let port = try PostgresServer.freePort() // bound and released: nothing listens there
        let url = "postgresql://ledger:s3cr%40t@127.0.0.1:\(port)/ledger"
        let start = Date()
        let error = #expect(throws: PostgresLedgerError.self) { try PostgresLedgerDatabase(url: url) }
        let seconds = Date().timeIntervalSince(start)
        print("unreachable reported in \(String(format: "%.3f", seconds)) s: \(error.map { "\($0)" } ?? "-")")
        #expect(seconds < 5)
        guard case let .unreachable(masked, _) = error else {
            Issue.record("expected .unreachable, got \(String(describing: error))")
            return
        }
        #expect(masked == "postgresql://ledger:***@127.0.0.1:\(port)/ledger")
        #expect(!"\(error!)".contains("s3cr"))
    }

    @Test func urlsAreParsedAndMasked() throws {
        let full = try PostgresURL("postgres://u%40x:p%3Aw@db.example:6543/my%20db?sslmode=disable")
        #expect(full.user == "u@x" && full.password == "p:w" && full.host == "db.example" && full.port == 6543 && full.database == "my db")
        #expect(full.masked == "postgres://u%40x:***@db.example:6543/my%20db?sslmode=disable")
        let plain = try PostgresURL("postgresql://me@localhost/ledger")
        #expect(plain.port == 5432 && plain.password == nil && plain.masked == "postgresql://me@localhost/ledger")
        let ipv6 = try PostgresURL("postgresql://me:pw@[::1]:5433/d")
        #expect(ipv6.host == "::1" && ipv6.port == 5433)
        let slashInPassword = try PostgresURL("postgresql://me:a/b?c@host/d")
        #expect(slashInPassword.password == "a/b?c" && slashInPassword.masked == "postgresql://me:***@host/d")

        for bad in ["mysql://me:hunter2@h/d", "postgresql://me:hunter2@h", "postgresql://h/d", "postgresql://me:hunter2@h:99999/d",
                    "postgresql://me:hunter2@h/d?sslmode=require", "postgresql://me:hunter2@h/d?sslmode=prefer",
                    "postgresql://me:hunter2@h/d?connect_timeout=3"] {
            let error = #expect(throws: PostgresLedgerError.self, "\(bad)") { try PostgresLedgerDatabase(url: bad) }
            guard case .badURL = error else {
                Issue.record("\(bad): expected .badURL, got \(String(describing: error))")
                continue
            }
            #expect(!"\(error!)".contains("hunter2"))
            print(error!.description)
        }
    }
}

// MARK: - Helpers

private struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// A value several threads update.
private final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `stored` is only touched with `lock` held.
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func mutate(_ change: (inout Value) -> Void) { lock.lock(); defer { lock.unlock() }; change(&stored) }
}

/// Runs `body` on `count` plain threads at once (not the cooperative pool: the ledger blocks its
/// caller) and waits for all of them.
private func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread.detachNewThread {
            body(index)
            group.leave()
        }
    }
    group.wait()
}
