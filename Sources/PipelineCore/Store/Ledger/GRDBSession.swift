import Foundation
import GRDB

/// `SQLSession` over one GRDB transaction: how `PipelineStore` (SQLite) runs `LedgerSQL`.
struct GRDBSession: SQLSession {
    let db: Database
    let now: Date
    var dialect: SQLDialect { .sqlite }

    init(_ db: Database, now: Date) { self.db = db; self.now = now }

    @discardableResult
    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int {
        try db.execute(sql: sql, arguments: StatementArguments(arguments.map(\.databaseValue)))
        return db.changesCount
    }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
        try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments.map(\.databaseValue))).map { row in
            SQLRow(Dictionary(zip(row.columnNames, row.databaseValues.map(SQLValue.init)), uniquingKeysWith: { a, _ in a }))
        }
    }
}

extension SQLValue {
    /// As SQLite stores it: dates in GRDB's text format (which sorts as time), booleans as 0 and 1.
    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case let .int(v): v.databaseValue
        case let .double(v): v.databaseValue
        case let .text(v): v.databaseValue
        case let .blob(v): v.databaseValue
        case let .date(v): v.databaseValue
        case let .bool(v): v.databaseValue
        }
    }

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case let .int64(v): self = .int(v)
        case let .double(v): self = .double(v)
        case let .string(v): self = .text(v)
        case let .blob(v): self = .blob(v)
        }
    }
}
