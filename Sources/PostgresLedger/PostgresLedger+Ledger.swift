import Foundation
import PipelineCore

/// PostgreSQL as a `Ledger`: the same operations as SQLite's, in transactions on the server, with
/// the server's clock unless a test sets one.
extension PostgresLedgerDatabase: Ledger {
    public func transaction<T>(now: Date?, _ body: (any SQLSession) throws -> T) throws -> T {
        try transaction { session in try body(ClockedSession(session, now: now)) }
    }

    public func read<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try transaction { session in try body(session) }
    }
}

/// The jobs one process does for everybody (discovery and planning, the dataset index, the
/// clean-up), under a PostgreSQL session advisory lock: one process at a time across every host,
/// released when the job ends or its process dies. It replaces the `flock` a local ledger uses.
public struct PostgresExclusiveSection: ExclusiveSection {
    /// "pipeline" in ASCII: the lock's key, the same for every release.
    public static let singletonJobs: Int64 = 0x7069_7065_6C69_6E65
    public let database: PostgresLedgerDatabase
    public let key: Int64
    /// Called once, before waiting, when another process holds the lock.
    public let onWait: @Sendable () -> Void

    public init(database: PostgresLedgerDatabase, key: Int64 = singletonJobs, onWait: @escaping @Sendable () -> Void = {}) {
        self.database = database; self.key = key; self.onWait = onWait
    }

    /// A server that goes away while the lock is asked for (a restart) is waited for as a
    /// transaction waits for it, up to the database's `retryFor`.
    public func run<T>(_ body: () throws -> T) throws -> T {
        var waited = false
        let started = Date()
        var delay = 0.05
        while true {
            let acquired: PostgresAdvisoryLock?
            do {
                acquired = try database.tryAdvisoryLock(key)
            } catch let error as PostgresLedgerError {
                guard case .unavailable = error, Date().timeIntervalSince(started) < database.retryFor else { throw error }
                Thread.sleep(forTimeInterval: delay)
                delay = min(2, delay * 2)
                continue
            }
            if let lock = acquired {
                defer { lock.release() }
                return try body()
            }
            if !waited { onWait(); waited = true }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }
}
