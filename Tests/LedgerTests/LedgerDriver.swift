import Foundation
import PipelineCore
import PipelineTestSupport
import PostgresLedger
import Synchronization

/// The drivers the conformance suite runs against.
enum LedgerDriver: String, CaseIterable, CustomStringConvertible {
    var description: String { rawValue }
    case sqlite, postgresql

    /// A fresh, migrated, empty ledger: an in-memory SQLite store, or a new database on the test
    /// process's PostgreSQL server (started once, on a free loopback port; stopped at exit).
    func makeLedger() throws -> any Ledger {
        switch self {
        case .sqlite: return try PipelineStore.inMemory()
        case .postgresql: return try SharedPostgres.newDatabase()
        }
    }
}

/// One PostgreSQL server for the whole test process. A server that cannot start fails every test
/// that needs it (CI installs `postgresql`; nothing is skipped).
enum SharedPostgres {
    private static let server = Mutex<Result<PostgresServer, any Error>?>(nil)

    static func instance() throws -> PostgresServer {
        try server.withLock { state in
            if state == nil {
                state = Result { try PostgresServer.start(name: "ledger") }
                if case let .success(s) = state { atexit_b { try? s.stop() } }
            }
            return try state!.get()
        }
    }

    /// A new, empty database on the server (not migrated).
    static func newDatabaseURL() throws -> String {
        let server = try instance()
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        _ = try server.psql("CREATE DATABASE \(name)")
        return server.url(database: String(name))
    }

    /// A new database, migrated.
    static func newDatabase() throws -> PostgresLedgerDatabase {
        let database = try PostgresLedgerDatabase(url: try newDatabaseURL(), retryFor: 30)
        try database.migrate()
        return database
    }
}

/// `atexit` with a closure (the server is stopped by pid when the test process ends).
private let exitHandlers = Mutex<[@Sendable () -> Void]>([])
func atexit_b(_ handler: @escaping @Sendable () -> Void) {
    let first = exitHandlers.withLock { handlers in
        handlers.append(handler)
        return handlers.count == 1
    }
    if first { atexit { exitHandlers.withLock { $0 }.forEach { $0() } } }
}
