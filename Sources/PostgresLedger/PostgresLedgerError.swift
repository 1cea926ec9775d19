import Foundation

/// What the PostgreSQL ledger reports. Every URL in it is masked (password → `***`): these
/// messages end up in logs and terminals.
public enum PostgresLedgerError: Error, CustomStringConvertible {
    /// The URL could not be read, or asks for something not supported (TLS).
    case badURL(String, reason: String)
    /// The first connection (in `init`) failed: wrong host, port, user, password or database, or no server.
    case unreachable(url: String, detail: String)
    /// The server stayed unreachable (or kept losing connections) for longer than `retryFor`.
    case unavailable(url: String, detail: String)
    /// The server refused a statement for a reason a retry does not fix (a constraint, a syntax error).
    case query(sqlState: String, message: String, sql: String)
    /// The database has migrations this build does not know: a newer `pipelined` has used it.
    case newerSchema(url: String, unknown: [String])

    public var description: String {
        switch self {
        case let .badURL(url, reason):
            return "invalid PostgreSQL URL \(url): \(reason) "
                + "(expected postgresql://user[:password]@host[:port]/database[?sslmode=disable])"
        case let .unreachable(url, detail):
            return "cannot connect to PostgreSQL at \(url): \(detail); check that the server is running and "
                + "reachable from this host, and the URL's host, port, user, password and database"
        case let .unavailable(url, detail):
            return "PostgreSQL at \(url) is unavailable: \(detail); check that the server is up and "
                + "reachable, then run again (work committed so far is kept)"
        case let .query(sqlState, message, sql):
            let state = sqlState.isEmpty ? "" : " (SQLSTATE \(sqlState))"
            return "PostgreSQL refused a statement\(state): \(message); statement: \(Self.oneLine(sql))"
        case let .newerSchema(url, unknown):
            return "the ledger at \(url) has schema migrations this build does not know (\(unknown.joined(separator: ", "))): "
                + "a newer pipelined has used it; upgrade pipelined on this host before using that database"
        }
    }

    /// SQL on one line, shortened: the description is one line.
    static func oneLine(_ sql: String) -> String {
        let flat = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return flat.count > 240 ? flat.prefix(240) + "…" : flat
    }
}
