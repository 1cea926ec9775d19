import Foundation
import PipelineCore
import PostgresNIO

/// The ledger's PostgreSQL database: transactions on pooled connections, retried across lost
/// connections and server restarts; schema migrations; session advisory locks.
///
/// Synchronous on purpose (see `Blocking`): callers are plain threads, or async code that may block
/// briefly; nothing here needs Swift's cooperative thread pool to make progress.
public final class PostgresLedgerDatabase: @unchecked Sendable {
    // @unchecked: the stored properties are immutable (or, for the test hook, guarded by
    // `hookLock`); the pool has its own lock; sessions are used by one thread each.

    /// The URL with the password replaced by `***` (for messages).
    public let maskedURL: String
    let url: PostgresURL
    let pool: ConnectionPool
    let connectTimeout: TimeInterval
    let retryFor: TimeInterval
    /// How long one statement may take before its connection is given up as dead (a server that
    /// vanished without closing the TCP connection). Generous: migrations wait here for each other's
    /// advisory lock.
    let statementTimeout: TimeInterval = 300

    /// The advisory lock key (a transaction lock) that serializes `migrate()` among processes:
    /// "pipeline" in ASCII.
    static let migrationLockKey: Int64 = 0x7069_7065_6C69_6E65

    /// Parses `postgresql://user[:password]@host[:port]/database` (also `postgres://`; %-escapes
    /// decoded; port 5432 by default; `?sslmode=disable` is the only TLS setting supported) and
    /// connects once, so that a wrong URL or a server that is not there is reported now, within
    /// `connectTimeout` seconds, as `.unreachable`. `retryFor`: how long `transaction` keeps
    /// retrying while the server is unreachable or restarting.
    public init(url: String, connectTimeout: TimeInterval = 10, retryFor: TimeInterval = 120) throws {
        let parsed = try PostgresURL(url)
        self.url = parsed
        maskedURL = parsed.masked
        self.connectTimeout = connectTimeout
        self.retryFor = retryFor
        pool = ConnectionPool(url: parsed, connectTimeout: connectTimeout)
        do {
            pool.release(try pool.connect(), reusable: true)
        } catch {
            throw PostgresLedgerError.unreachable(url: maskedURL, detail: Self.describe(Classified(error)))
        }
    }

    deinit { close() }

    /// Closes the idle connections; later transactions fail. Advisory locks keep their own
    /// connections until released.
    public func close() { pool.shutDown() }

    // MARK: Transactions

    /// Runs `body` in one transaction (BEGIN … COMMIT; ROLLBACK if it throws, and its error is
    /// rethrown as it is). The session's `now` is the server's `now()`, so leases use one clock.
    ///
    /// When the connection is lost, the server restarts, or it asks for a retry (serialization
    /// failure, deadlock), the whole transaction, body included, runs again on a fresh connection,
    /// after 50 ms doubling to 2 s, until `retryFor` seconds have passed; then the last problem is
    /// thrown as `.unavailable`. So the body must not have effects outside the database that cannot
    /// happen twice. A statement the server refuses for another reason (a constraint, a syntax
    /// error) throws `.query` at once.
    ///
    /// A connection lost during COMMIT leaves its outcome unknown; running the body again could do
    /// its work twice. The transaction's id (read just before COMMIT) answers it: `txid_status` on
    /// a new connection says whether it committed, and only if it did not does the body run again.
    @discardableResult
    public func transaction<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        var delay = 0.05
        var unresolved: (xid: Int64, result: T)?
        while true {
            let problem: String
            if let pending = unresolved {
                switch try commitStatus(pending.xid) {
                case .committed: return pending.result
                case .aborted:
                    unresolved = nil
                    continue
                case let .unknown(why): problem = why
                }
            } else {
                switch try attempt(body) {
                case let .done(result): return result
                case let .retry(why): problem = why
                case let .commitUnknown(xid, result, why):
                    unresolved = (xid, result)
                    problem = why
                }
            }
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            guard seconds < retryFor, !pool.isClosed else {
                let outcome = unresolved.map { " (whether transaction \($0.xid) committed is unknown)" } ?? ""
                throw PostgresLedgerError.unavailable(url: maskedURL, detail: "\(problem)\(outcome); retried for \(Int(seconds.rounded())) s")
            }
            Thread.sleep(forTimeInterval: min(delay, retryFor - seconds))
            delay = min(delay * 2, 2)
        }
    }

    private enum Attempt<T> {
        case done(T)
        /// Nothing was committed; run it all again.
        case retry(String)
        /// COMMIT was sent and the connection was lost before its answer.
        case commitUnknown(xid: Int64, result: T, String)
    }

    /// One run of the transaction on one connection.
    private func attempt<T>(_ body: (any SQLSession) throws -> T) throws -> Attempt<T> {
        guard !pool.isClosed else {
            throw PostgresLedgerError.unavailable(url: maskedURL, detail: "this ledger database was closed")
        }
        let connection: PostgresConnection
        do {
            connection = try pool.acquire()
        } catch {
            let classified = Classified(error)
            // Authentication failed, the database is gone: waiting does not help.
            guard classified.transient else { throw PostgresLedgerError.unreachable(url: maskedURL, detail: Self.describe(classified)) }
            pool.discardIdle()
            return .retry(Self.describe(classified))
        }
        let session = PostgresSession(connection: connection, logger: pool.logger, url: maskedURL, statementTimeout: statementTimeout)
        var reusable = false
        defer { pool.release(connection, reusable: reusable) }
        /// The connection failed (or the server asked for a retry): retry on another; the idle
        /// ones most likely talked to the same server process and are dropped too.
        func lost(_ why: String) -> Attempt<T> {
            pool.discardIdle()
            return .retry(why)
        }

        do { try session.begin() } catch {
            if let why = session.broken { return lost(why) }
            throw error
        }
        let result: T
        do {
            result = try body(session)
        } catch {
            // Even if the body turned it into an error of its own: the transaction is lost.
            if let why = session.broken { return lost(why) }
            reusable = session.rollback()
            throw error
        }
        // The body may have caught the failure and returned normally; nothing it did survives.
        if let why = session.broken { return lost(why) }

        let xid: Int64?
        do { xid = try session.transactionID() } catch {
            if let why = session.broken { return lost(why) }
            reusable = session.rollback()
            // A statement failed and the body carried on: PostgreSQL refuses everything after it
            // (25P02), so report the statement that failed first.
            throw session.firstError ?? error
        }
        let fault = takeCommitFault()
        if fault == .closeBeforeCommit { _ = try? Blocking.wait(connection.close(), seconds: 5, watching: nil, what: "closing") }
        let committed: Bool
        do {
            committed = try session.commit()
        } catch {
            guard let why = session.broken else { throw error }  // e.g. a deferred constraint: rolled back
            pool.discardIdle()
            // The server rolled back to resolve a conflict: certainly not committed.
            if session.brokenSQLState == "40001" || session.brokenSQLState == "40P01" { return .retry(why) }
            // Nothing written: whether COMMIT went through does not matter.
            guard let xid else { return .done(result) }
            return .commitUnknown(xid: xid, result: result, why)
        }
        guard committed else {
            // COMMIT answered ROLLBACK: a statement failed and the body carried on.
            reusable = true
            throw session.firstError ?? PostgresLedgerError.query(sqlState: "25P02", message: "the transaction was rolled back because a statement in it failed", sql: "COMMIT")
        }
        reusable = true
        if fault == .failAfterCommit, let xid {
            pool.discardIdle()
            return .commitUnknown(xid: xid, result: result, "simulated loss of the connection after COMMIT")
        }
        return .done(result)
    }

    private enum CommitStatus { case committed, aborted, unknown(String) }

    /// Whether a transaction whose COMMIT got no answer committed, asked on a new connection.
    private func commitStatus(_ xid: Int64) throws -> CommitStatus {
        let connection: PostgresConnection
        do { connection = try pool.acquire() } catch {
            let classified = Classified(error)
            guard classified.transient else { throw PostgresLedgerError.unreachable(url: maskedURL, detail: Self.describe(classified)) }
            return .unknown(Self.describe(classified))
        }
        let session = PostgresSession(connection: connection, logger: pool.logger, url: maskedURL, statementTimeout: statementTimeout)
        var reusable = false
        defer { pool.release(connection, reusable: reusable) }
        let status: String?
        do {
            status = try session.rows("SELECT txid_status(?) AS status", [.int(xid)]).first?.optionalText("status")
        } catch {
            if let why = session.broken { return .unknown(why) }
            throw error
        }
        reusable = true
        switch status {
        case "committed": return .committed
        case "aborted": return .aborted
        case "in progress":
            // The server process of the lost connection has not ended yet; it will, and abort
            // (or it had received COMMIT and finishes it).
            return .unknown("transaction \(xid) is still in progress on the server after its connection was lost")
        default:
            throw PostgresLedgerError.unavailable(url: maskedURL, detail: "the connection was lost during COMMIT and the server "
                                                  + "can no longer say whether transaction \(xid) committed")
        }
    }

    // MARK: Migrations

    /// Applies the migrations (`PostgresMigrations.all`) this database has not had yet, each in a
    /// transaction of its own that first takes a transaction advisory lock, so that processes
    /// starting together apply each migration once and wait for each other. Records them in
    /// `schemaMigration`. Throws `.newerSchema` if the database has a migration this build does not
    /// know: a newer release changed the schema, and this one would misread it.
    public func migrate() throws {
        var more = true
        while more {
            more = try transaction { session in
                try session.execute("SELECT pg_advisory_xact_lock(?)", [.int(Self.migrationLockKey)])
                // Under the lock: two CREATE TABLE IF NOT EXISTS at once can still collide.
                try session.execute("CREATE TABLE IF NOT EXISTS schemaMigration (identifier TEXT PRIMARY KEY, appliedAt TIMESTAMPTZ NOT NULL DEFAULT now())", [])
                let applied = Set(try session.rows("SELECT identifier FROM schemaMigration", []).map { try $0.text("identifier") })
                let unknown = applied.subtracting(PostgresMigrations.all.map(\.identifier)).sorted()
                guard unknown.isEmpty else { throw PostgresLedgerError.newerSchema(url: maskedURL, unknown: unknown) }
                guard let next = PostgresMigrations.all.first(where: { !applied.contains($0.identifier) }) else { return false }
                for statement in next.statements { try session.execute(statement, []) }
                try session.execute("INSERT INTO schemaMigration (identifier) VALUES (?)", [.text(next.identifier)])
                return true
            }
        }
    }

    // MARK: Advisory locks

    /// A session advisory lock on `key` (`pg_try_advisory_lock`), held by a connection of its own
    /// that stays open until `release()`; nil if another session holds it. The server releases it
    /// when that connection ends, so a process that dies cannot leave it held; a server restart
    /// loses it too, which `isHeld` reports.
    public func tryAdvisoryLock(_ key: Int64) throws -> PostgresAdvisoryLock? {
        let connection: PostgresConnection
        do { connection = try pool.connect() } catch {
            throw PostgresLedgerError.unavailable(url: maskedURL, detail: Self.describe(Classified(error)))
        }
        let session = PostgresSession(connection: connection, logger: pool.logger, url: maskedURL, statementTimeout: connectTimeout + 5)
        do {
            // Outside any transaction: the lock belongs to the session, not to a transaction.
            guard try session.rows("SELECT pg_try_advisory_lock(?) AS locked", [.int(key)]).first?.bool("locked") == true else {
                ConnectionPool.discard(connection)
                return nil
            }
        } catch {
            ConnectionPool.discard(connection)
            throw error
        }
        return PostgresAdvisoryLock(key: key, connection: connection, logger: pool.logger, url: maskedURL, checkTimeout: connectTimeout + 5)
    }

    // MARK: Helpers

    static func describe(_ classified: Classified) -> String {
        classified.sqlState.isEmpty ? classified.message : "\(classified.message) (SQLSTATE \(classified.sqlState))"
    }

    /// Test hook: makes the next COMMIT look lost, before it is sent or after it succeeded.
    enum CommitFault { case closeBeforeCommit, failAfterCommit }
    private let hookLock = NSLock()
    private var commitFault: CommitFault?
    func injectCommitFault(_ fault: CommitFault) {
        hookLock.lock(); defer { hookLock.unlock() }
        commitFault = fault
    }
    private func takeCommitFault() -> CommitFault? {
        hookLock.lock(); defer { hookLock.unlock() }
        defer { commitFault = nil }
        return commitFault
    }
}

/// A session advisory lock and the connection that holds it.
public final class PostgresAdvisoryLock: @unchecked Sendable {
    // @unchecked: `connection` is guarded by `lock`; the rest is immutable.
    private let lock = NSLock()
    private var connection: PostgresConnection?
    let key: Int64
    private let logger: Logger
    private let url: String
    private let checkTimeout: TimeInterval

    init(key: Int64, connection: PostgresConnection, logger: Logger, url: String, checkTimeout: TimeInterval) {
        self.key = key
        self.connection = connection
        self.logger = logger
        self.url = url
        self.checkTimeout = checkTimeout
    }

    deinit {
        if let connection { ConnectionPool.discard(connection) }
    }

    /// Whether the lock is still held: asks the server (pg_locks) on the lock's connection. False
    /// once released, or when that connection was lost (a server restart forgets session locks).
    public var isHeld: Bool {
        lock.lock(); defer { lock.unlock() }
        guard let connection else { return false }
        guard !connection.isClosed else {
            drop()
            return false
        }
        let session = PostgresSession(connection: connection, logger: logger, url: url, statementTimeout: checkTimeout)
        // A bigint key is stored as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
        let held = try? session.rows("""
            SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                AND classid = ((? >> 32) & 4294967295)::oid AND objid = (? & 4294967295)::oid AND objsubid = 1) AS held
            """, [.int(key), .int(key)]).first?.bool("held")
        guard held == true else {
            drop()
            return false
        }
        return true
    }

    /// Unlocks and closes the lock's connection. Unlocks first, and waits for the answer: closing
    /// alone releases the lock only once the server has noticed, which another process asking right
    /// after could beat.
    public func release() {
        lock.lock(); defer { lock.unlock() }
        guard let connection else { return }
        if !connection.isClosed {
            let session = PostgresSession(connection: connection, logger: logger, url: url, statementTimeout: checkTimeout)
            _ = try? session.execute("SELECT pg_advisory_unlock(?)", [.int(key)])
        }
        drop()
    }

    /// Closes the connection (called with `lock` held).
    private func drop() {
        if let connection { ConnectionPool.discard(connection) }
        connection = nil
    }
}
