import Foundation
import PipelineCore
import PostgresNIO

/// One transaction on one PostgreSQL connection, for the ledger's shared SQL (`SQLSession`).
///
/// Errors: a statement the server refuses throws `PostgresLedgerError.query` with the server's
/// message. A lost connection (or a server-requested retry) throws `.unavailable` and marks the
/// session `broken`, which `PostgresLedgerDatabase.transaction` checks after the body: the whole
/// transaction is retried even if the body caught the error, and every later statement of this
/// session fails at once (the connection is gone, or PostgreSQL has aborted the transaction).
final class PostgresSession: SQLSession {
    let dialect = SQLDialect.postgresql
    private(set) var now = Date()
    let connection: PostgresConnection
    let logger: Logger
    let url: String
    let statementTimeout: TimeInterval
    /// Why the connection is unusable (set by the first transient failure).
    private(set) var broken: String?
    /// The SQLSTATE of that failure, if the server sent one (40001 and 40P01 say the transaction
    /// was certainly rolled back).
    private(set) var brokenSQLState = ""
    /// The first statement error of the transaction: PostgreSQL aborts a transaction at its first
    /// error, so if the body caught it and went on, COMMIT rolls back and this is what to report.
    private(set) var firstError: PostgresLedgerError?

    init(connection: PostgresConnection, logger: Logger, url: String, statementTimeout: TimeInterval) {
        self.connection = connection
        self.logger = logger
        self.url = url
        self.statementTimeout = statementTimeout
    }

    @discardableResult
    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int {
        try Self.affectedRows(run(sql, arguments).metadata)
    }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
        let result = try run(sql, arguments)
        do {
            return try result.rows.map { row in
                var values: [String: SQLValue] = [:]
                for cell in row { values[cell.columnName] = try Self.value(of: cell) }
                return SQLRow(values)
            }
        } catch let error as PostgresLedgerError {
            firstError = firstError ?? error
            throw error
        } catch {
            let failure = PostgresLedgerError.query(sqlState: "", message: Classified(error).message, sql: sql)
            firstError = firstError ?? failure
            throw failure
        }
    }

    // MARK: Transaction control (for PostgresLedgerDatabase)

    /// BEGIN, then the transaction's clock: `now()` is the start time of the transaction on the
    /// server, so every host's leases are measured on one clock.
    func begin() throws {
        try run("BEGIN", [])
        guard let start = try rows("SELECT now() AS now", []).first?.optionalDate("now") else {
            throw PostgresLedgerError.query(sqlState: "", message: "SELECT now() returned no time", sql: "SELECT now()")
        }
        now = start
    }

    /// The transaction's id if it has written anything, else nil. Read just before COMMIT so that,
    /// if the connection is lost during COMMIT, `txid_status` on a new connection can tell whether
    /// it committed (rather than running the body a second time after a commit that happened).
    func transactionID() throws -> Int64? {
        try rows("SELECT txid_current_if_assigned() AS xid", []).first?.optionalInt64("xid")
    }

    /// COMMIT; false when the server answered ROLLBACK instead (the transaction had failed).
    func commit() throws -> Bool {
        try run("COMMIT", []).metadata.command != "ROLLBACK"
    }

    /// ROLLBACK; whether the connection is still fit for reuse.
    func rollback() -> Bool {
        guard broken == nil else { return false }
        do { try run("ROLLBACK", []); return true } catch { return false }
    }

    // MARK: Statements

    /// Runs one statement (the extended protocol takes exactly one) and waits for all its rows.
    @discardableResult
    func run(_ sql: String, _ arguments: [SQLValue]) throws -> PostgresQueryResult {
        if let broken { throw PostgresLedgerError.unavailable(url: url, detail: broken) }
        let (text, count) = Placeholders.rewrite(sql)
        guard count == arguments.count else {
            // Checked here: the server would report the mismatch as a protocol violation (08P01),
            // which looks like a connection problem and would be retried for nothing.
            let failure = PostgresLedgerError.query(sqlState: "", message: "the statement has \(count) ? placeholders but \(arguments.count) arguments were given", sql: sql)
            firstError = firstError ?? failure
            throw failure
        }
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments { Self.bind(argument, to: &binds) }
        // A query sent on a closed connection never completes (postgres-nio 1.33.2): look first.
        guard !connection.isClosed else { throw fail(ConnectionTrouble(description: "the connection to the server was closed"), sql: sql) }
        do {
            return try Blocking.wait(connection.query(PostgresQuery(unsafeSQL: text, binds: binds), logger: logger),
                                     seconds: statementTimeout, watching: connection, what: "a statement")
        } catch {
            throw fail(error, sql: sql)
        }
    }

    private func fail(_ error: any Error, sql: String) -> PostgresLedgerError {
        let classified = Classified(error)
        let failure: PostgresLedgerError
        if classified.transient {
            let detail = classified.sqlState.isEmpty ? classified.message : "\(classified.message) (SQLSTATE \(classified.sqlState))"
            if broken == nil { (broken, brokenSQLState) = (detail, classified.sqlState) }
            failure = .unavailable(url: url, detail: detail)
        } else {
            failure = .query(sqlState: classified.sqlState, message: classified.message, sql: sql)
        }
        firstError = firstError ?? failure
        return failure
    }

    /// The rows a statement changed, from its command tag (`INSERT 0 3`, `UPDATE 2`, `MERGE 1`);
    /// 0 for commands without a count (CREATE TABLE).
    static func affectedRows(_ metadata: PostgresQueryMetadata) -> Int {
        if let rows = metadata.rows { return rows }
        // postgres-nio parses only the tags it knows; the rest arrive whole in `command`.
        return metadata.command.split(separator: " ").last.flatMap { Int($0) } ?? 0
    }

    // MARK: Values

    /// Binds typed values (the server checks them against the columns) except NULL, which goes
    /// without a type so that the server takes it from the context (`col = $1`, `VALUES ($1)`).
    static func bind(_ value: SQLValue, to binds: inout PostgresBindings) {
        switch value {
        case .null: binds.appendNull()
        case let .int(v): binds.append(v)
        case let .double(v): binds.append(v)
        case let .text(v): binds.append(v)
        case let .blob(v): binds.append(ByteBuffer(bytes: v))
        case let .date(v): binds.append(v)
        case let .bool(v): binds.append(v)
        }
    }

    /// A result cell as the value both drivers share, by its PostgreSQL type. Types the ledger does
    /// not use are refused with a message that says how to get them (a cast in the SQL).
    static func value(of cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .int(try cell.decode(Int64.self))
        case .oid:
            // postgres-nio has no decoder for oid (an unsigned 32-bit integer in binary format).
            guard var bytes = cell.bytes, bytes.readableBytes == 4, let oid = bytes.readInteger(as: UInt32.self) else {
                throw PostgresLedgerError.query(sqlState: "", message: "column \(cell.columnName): malformed oid", sql: "")
            }
            return .int(Int64(oid))
        case .float4, .float8: return .double(try cell.decode(Double.self))
        case .numeric:
            // SUM() and AVG() of integers are numeric; the ledger only ever wants them as numbers.
            let decimal = try cell.decode(Decimal.self)
            return .double(NSDecimalNumber(decimal: decimal).doubleValue)
        case .text, .varchar, .bpchar, .name, .unknown, .json, .jsonb: return .text(try cell.decode(String.self))
        case .bytea: return .blob(try cell.decode(Data.self))
        case .timestamptz, .timestamp, .date: return .date(try cell.decode(Date.self))
        case .bool: return .bool(try cell.decode(Bool.self))
        default:
            throw PostgresLedgerError.query(sqlState: "", message: "column \(cell.columnName) has type \(cell.dataType), which the ledger "
                                            + "does not read; cast it in the SQL (::text, ::float8, ::bigint)", sql: "")
        }
    }
}

/// `?` placeholders to PostgreSQL's `$1, $2, …`.
enum Placeholders {
    /// Rewrites each `?` outside string literals ('…', E'…' with backslash escapes, $tag$…$tag$),
    /// quoted identifiers ("…") and comments (-- and nested /* */); returns how many there were.
    /// PostgreSQL's jsonb operators ?, ?| and ?& cannot be written in the shared SQL (use the
    /// functions jsonb_exists and friends instead).
    static func rewrite(_ sql: String) -> (sql: String, count: Int) {
        let bytes = Array(sql.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        var count = 0
        var i = 0
        let n = bytes.count
        func isIdentifier(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x24 || b >= 0x80
        }
        /// Copies from `i` through the end of a literal that starts at `i` and ends with `close`.
        func copy(through end: Int) {
            let stop = min(end, n)
            out.append(contentsOf: bytes[i..<stop])
            i = stop
        }
        while i < n {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "'"):
                // E'…' (not the end of a longer word such as LIKE'…') lets \' escape a quote.
                let escapes = i > 0 && (bytes[i - 1] == UInt8(ascii: "E") || bytes[i - 1] == UInt8(ascii: "e"))
                    && (i < 2 || !isIdentifier(bytes[i - 2]))
                var j = i + 1
                while j < n {
                    if escapes && bytes[j] == UInt8(ascii: "\\") { j += 2; continue }
                    if bytes[j] == UInt8(ascii: "'") {
                        if j + 1 < n && bytes[j + 1] == UInt8(ascii: "'") { j += 2; continue }  // '' inside the literal
                        break
                    }
                    j += 1
                }
                copy(through: j + 1)
            case UInt8(ascii: "\""):
                // "" inside an identifier closes and reopens it, which copies the same.
                var j = i + 1
                while j < n && bytes[j] != UInt8(ascii: "\"") { j += 1 }
                copy(through: j + 1)
            case UInt8(ascii: "-") where i + 1 < n && bytes[i + 1] == UInt8(ascii: "-"):
                var j = i + 2
                while j < n && bytes[j] != UInt8(ascii: "\n") { j += 1 }
                copy(through: j)
            case UInt8(ascii: "/") where i + 1 < n && bytes[i + 1] == UInt8(ascii: "*"):
                var depth = 1
                var j = i + 2
                while j < n && depth > 0 {
                    if bytes[j] == UInt8(ascii: "/") && j + 1 < n && bytes[j + 1] == UInt8(ascii: "*") { depth += 1; j += 2 }
                    else if bytes[j] == UInt8(ascii: "*") && j + 1 < n && bytes[j + 1] == UInt8(ascii: "/") { depth -= 1; j += 2 }
                    else { j += 1 }
                }
                copy(through: j)
            case UInt8(ascii: "$") where i == 0 || !isIdentifier(bytes[i - 1]):
                // $tag$…$tag$ (tag empty or an identifier not starting with a digit); $1 is a
                // parameter written by hand and is copied as it is.
                var j = i + 1
                while j < n && isIdentifier(bytes[j]) && bytes[j] != UInt8(ascii: "$") { j += 1 }
                let tag = bytes[i...min(j, n - 1)]
                let startsWithDigit = j > i + 1 && bytes[i + 1] >= 0x30 && bytes[i + 1] <= 0x39
                guard j < n, bytes[j] == UInt8(ascii: "$"), !startsWithDigit else {
                    out.append(b); i += 1
                    continue
                }
                var k = j + 1
                var end = n
                while k + tag.count <= n {
                    if bytes[k] == UInt8(ascii: "$") && bytes[k..<(k + tag.count)].elementsEqual(tag) { end = k + tag.count; break }
                    k += 1
                }
                copy(through: end)
            case UInt8(ascii: "?"):
                count += 1
                out.append(contentsOf: Array("$\(count)".utf8))
                i += 1
            default:
                out.append(b)
                i += 1
            }
        }
        return (String(decoding: out, as: UTF8.self), count)
    }
}
