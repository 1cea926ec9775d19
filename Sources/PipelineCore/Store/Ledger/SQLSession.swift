import Foundation

/// A value bound to or read from a statement, in the types both drivers share.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob(Data)
    case date(Date)
    case bool(Bool)
}

/// Something that binds as one `SQLValue`.
public protocol SQLBindable { var sqlValue: SQLValue { get } }
extension Int: SQLBindable { public var sqlValue: SQLValue { .int(Int64(self)) } }
extension Int64: SQLBindable { public var sqlValue: SQLValue { .int(self) } }
extension Int32: SQLBindable { public var sqlValue: SQLValue { .int(Int64(self)) } }
extension Double: SQLBindable { public var sqlValue: SQLValue { .double(self) } }
extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Data: SQLBindable { public var sqlValue: SQLValue { .blob(self) } }
extension Date: SQLBindable { public var sqlValue: SQLValue { .date(self) } }
extension Bool: SQLBindable { public var sqlValue: SQLValue { .bool(self) } }
extension ItemState: SQLBindable { public var sqlValue: SQLValue { .text(rawValue) } }
extension RunStatus: SQLBindable { public var sqlValue: SQLValue { .text(rawValue) } }
extension Optional: SQLBindable where Wrapped: SQLBindable { public var sqlValue: SQLValue { self?.sqlValue ?? .null } }

/// One result row, by column name (lower-cased: PostgreSQL folds unquoted names).
public struct SQLRow: Sendable {
    public var values: [String: SQLValue]
    public init(_ values: [String: SQLValue]) {
        self.values = Dictionary(values.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    public subscript(_ column: String) -> SQLValue { values[column.lowercased()] ?? .null }

    public func int64(_ column: String) throws -> Int64 { try required(column, optionalInt64(column)) }
    public func int(_ column: String) throws -> Int { Int(try int64(column)) }
    public func optionalInt64(_ column: String) -> Int64? {
        switch self[column] {
        case let .int(v): v
        case let .double(v): Int64(v)
        case let .bool(v): v ? 1 : 0
        case let .text(v): Int64(v)
        default: nil
        }
    }
    public func optionalInt(_ column: String) -> Int? { optionalInt64(column).map(Int.init) }
    public func double(_ column: String) throws -> Double { try required(column, optionalDouble(column)) }
    public func optionalDouble(_ column: String) -> Double? {
        switch self[column] {
        case let .double(v): v
        case let .int(v): Double(v)
        default: nil
        }
    }
    public func text(_ column: String) throws -> String { try required(column, optionalText(column)) }
    public func optionalText(_ column: String) -> String? {
        switch self[column] {
        case let .text(v): v
        case let .int(v): String(v)
        default: nil
        }
    }
    public func bool(_ column: String) throws -> Bool {
        switch self[column] {
        case let .bool(v): v
        case let .int(v): v != 0
        default: throw SQLRowError.missing(column)
        }
    }
    public func date(_ column: String) throws -> Date { try required(column, optionalDate(column)) }
    public func optionalDate(_ column: String) -> Date? {
        switch self[column] {
        case let .date(v): v
        case let .text(v): SQLDates.parse(v)
        default: nil
        }
    }
    public func blob(_ column: String) throws -> Data {
        switch self[column] {
        case let .blob(v): v
        case let .text(v): Data(v.utf8)
        default: throw SQLRowError.missing(column)
        }
    }

    private func required<T>(_ column: String, _ value: T?) throws -> T {
        guard let value else { throw SQLRowError.missing(column) }
        return value
    }
}

public enum SQLRowError: Error, CustomStringConvertible {
    case missing(String)
    public var description: String { "the database returned no usable value for column \(missing)" }
    private var missing: String { if case let .missing(c) = self { c } else { "" } }
}

/// How SQLite keeps dates (GRDB's format: UTC, "yyyy-MM-dd HH:mm:ss.SSS"), which sorts as text.
enum SQLDates {
    static func parse(_ text: String) -> Date? {
        // "2026-12-03 15:48:23.123" (or without the fraction, or with a T).
        let parts = text.replacingOccurrences(of: "T", with: " ").split(separator: " ")
        guard parts.count == 2 else { return nil }
        let day = parts[0].split(separator: "-").compactMap { Int($0) }
        let time = parts[1].split(separator: ":")
        guard day.count == 3, time.count == 3, let hour = Int(time[0]), let minute = Int(time[1]),
              let seconds = Double(time[2].trimmingCharacters(in: CharacterSet(charactersIn: "Z"))) else { return nil }
        var components = DateComponents()
        components.year = day[0]; components.month = day[1]; components.day = day[2]
        components.hour = hour; components.minute = minute; components.second = 0
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: components).map { $0.addingTimeInterval(seconds) }
    }
}

/// Which database a session talks to, where the SQL must differ.
public enum SQLDialect: Sendable { case sqlite, postgresql }

/// One transaction of a ledger driver: statements written once, with `?` placeholders, in the SQL
/// both SQLite and PostgreSQL accept (`TRUE`/`FALSE`, `||`, `ON CONFLICT … DO`, `RETURNING`), so
/// that the ledger's logic (`LedgerSQL`) exists once and the conformance suite tests it on both.
public protocol SQLSession {
    var dialect: SQLDialect { get }
    /// The transaction's clock: the database server's `now()` on PostgreSQL (hosts' clocks may
    /// disagree; leases must not), the host's on SQLite (one host).
    var now: Date { get }
    /// Runs a statement; returns the number of rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int
    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow]
}

extension SQLSession {
    @discardableResult
    public func execute(_ sql: String, _ arguments: any SQLBindable...) throws -> Int { try execute(sql, arguments.map(\.sqlValue)) }
    public func rows(_ sql: String, _ arguments: any SQLBindable...) throws -> [SQLRow] { try rows(sql, arguments.map(\.sqlValue)) }
    public func row(_ sql: String, _ arguments: any SQLBindable...) throws -> SQLRow? { try rows(sql, arguments.map(\.sqlValue)).first }
    /// The first column of the first row, as an integer (COUNT, EXISTS, an id).
    public func int(_ sql: String, _ arguments: any SQLBindable...) throws -> Int64? {
        try rows(sql, arguments.map(\.sqlValue)).first.flatMap { $0.values.count == 1 ? $0.optionalInt64($0.values.keys.first!) : nil }
    }
    /// `FOR UPDATE OF <alias> SKIP LOCKED` where the database has it: PostgreSQL workers skip the
    /// rows another transaction is claiming; SQLite's write transactions are exclusive anyway.
    func skipLocked(_ alias: String) -> String { dialect == .postgresql ? "FOR UPDATE OF \(alias) SKIP LOCKED" : "" }
    /// `FOR UPDATE` where the database has it (row locks on PostgreSQL).
    var forUpdate: String { dialect == .postgresql ? "FOR UPDATE" : "" }
}

// MARK: Records from rows

extension StageResultRecord {
    init(row: SQLRow) throws {
        self.init(id: try row.int64("id"), stage: try row.text("stage"), sourceId: try row.int64("sourceId"), clipId: row.optionalInt64("clipId"),
                  itemKey: try row.text("itemKey"), fingerprint: try row.text("fingerprint"),
                  state: try ItemState(rawValue: row.text("state")).orThrow(SQLRowError.missing("state")),
                  attempts: try row.int("attempts"), reason: row.optionalText("reason"), metrics: row.optionalText("metrics"),
                  artifactPath: row.optionalText("artifactPath"), startedAt: row.optionalDate("startedAt"), finishedAt: row.optionalDate("finishedAt"),
                  seconds: row.optionalDouble("seconds"), runId: row.optionalInt64("runId"), leaseExpiresAt: row.optionalDate("leaseExpiresAt"),
                  nextAttemptAt: row.optionalDate("nextAttemptAt"), superseded: try row.bool("superseded"))
    }
}

extension SourceRecord {
    init(row: SQLRow) throws {
        self.init(id: try row.int64("id"), relativePath: try row.text("relativePath"), size: try row.int64("size"), mtime: try row.double("mtime"),
                  contentHash: try row.text("contentHash"), discoveredAt: try row.date("discoveredAt"), goneAt: row.optionalDate("goneAt"),
                  probe: row.optionalText("probe"), durationSeconds: row.optionalDouble("durationSeconds"), problem: row.optionalText("problem"),
                  outputStem: row.optionalText("outputStem"))
    }
}

extension ClipRecord {
    init(row: SQLRow) throws {
        self.init(id: try row.int64("id"), sourceId: try row.int64("sourceId"), sceneIndex: try row.int("sceneIndex"),
                  segmentIndex: try row.int("segmentIndex"), startFrame: try row.int("startFrame"), endFrame: try row.int("endFrame"))
    }
}

extension RunRecord {
    init(row: SQLRow) throws {
        self.init(id: try row.int64("id"), startedAt: try row.date("startedAt"), finishedAt: row.optionalDate("finishedAt"),
                  heartbeatAt: try row.date("heartbeatAt"), host: try row.text("host"), pid: Int32(try row.int("pid")),
                  version: try row.text("version"), status: try RunStatus(rawValue: row.text("status")).orThrow(SQLRowError.missing("status")),
                  counts: row.optionalText("counts"), devices: row.optionalText("devices"))
    }
}

extension Optional {
    func orThrow(_ error: @autoclosure () -> any Error) throws -> Wrapped {
        guard let self else { throw error() }
        return self
    }
}

/// A session whose clock is set by the caller (tests travel in time; a driver without a server
/// clock uses the host's).
public struct ClockedSession: SQLSession {
    public let base: any SQLSession
    public let now: Date
    public var dialect: SQLDialect { base.dialect }
    public init(_ base: any SQLSession, now: Date?) { self.base = base; self.now = now ?? base.now }
    @discardableResult
    public func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int { try base.execute(sql, arguments) }
    public func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] { try base.rows(sql, arguments) }
}
