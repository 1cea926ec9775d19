import Foundation

/// `postgresql://user[:password]@host[:port]/database[?sslmode=disable]`, read by hand rather than
/// with `URLComponents`: the errors must say what is wrong with the user's URL, the password must
/// never appear in them, and an IPv6 host (`[::1]`) or a percent-encoded `@` in a password must work.
struct PostgresURL: Equatable {
    var user: String
    var password: String?
    var host: String
    var port: Int
    var database: String
    /// The URL as the user wrote it, with the password (if any) replaced by `***`.
    var masked: String

    static let defaultPort = 5432

    init(_ text: String) throws {
        let masked = Self.mask(text)
        func bad(_ reason: String) -> PostgresLedgerError { .badURL(masked, reason: reason) }
        func decode(_ part: Substring, _ what: String) throws -> String {
            guard let value = String(part).removingPercentEncoding else { throw bad("the \(what) has an invalid %-escape") }
            return value
        }

        guard let schemeEnd = text.range(of: "://") else { throw bad("it does not start with postgresql://") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgresql" || scheme == "postgres" else {
            throw bad("the scheme is \"\(scheme)\", not postgresql or postgres")
        }
        var rest = text[schemeEnd.upperBound...]

        // The LAST @ ends the user information, so that a password with an unescaped @, / or ?
        // still parses (and is masked: see `mask`).
        guard let at = rest.lastIndex(of: "@") else { throw bad("it names no user (postgresql://user@host/database)") }
        let userInfo = rest[..<at]
        rest = rest[rest.index(after: at)...]
        if let colon = userInfo.firstIndex(of: ":") {
            user = try decode(userInfo[..<colon], "user name")
            password = try decode(userInfo[userInfo.index(after: colon)...], "password")
        } else {
            user = try decode(userInfo, "user name")
            password = nil
        }
        guard !user.isEmpty else { throw bad("it names no user (postgresql://user@host/database)") }

        // Query parameters: only sslmode, and of its values only disable, for now.
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        for parameter in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try decode(pair[0], "query parameter name")
            let value = pair.count > 1 ? try decode(pair[1], "query parameter value") : ""
            guard key == "sslmode" else { throw bad("unknown parameter \"\(key)\" (only sslmode is supported)") }
            switch value {
            case "disable": break
            case "prefer", "require", "allow", "verify-ca", "verify-full":
                // No TLS configuration is wired up yet; connecting in the clear when TLS was asked
                // for would silently weaken what the user set up.
                throw bad("sslmode=\(value) asks for TLS, which is not supported yet; use sslmode=disable (no TLS) "
                          + "on a trusted network, or a TLS tunnel")
            default: throw bad("sslmode=\(value) is not a known sslmode (disable, prefer, require)")
            }
        }

        guard let slash = rest.firstIndex(of: "/") else { throw bad("it names no database (…@host:port/database)") }
        var hostPort = rest[..<slash]
        database = try decode(rest[rest.index(after: slash)...], "database name")
        guard !database.isEmpty else { throw bad("it names no database (…@host:port/database)") }
        guard !database.contains("/") else { throw bad("the database name contains a /") }

        var portText: Substring?
        if hostPort.hasPrefix("[") {
            // IPv6 literal: [::1]:5432
            guard let close = hostPort.firstIndex(of: "]") else { throw bad("the IPv6 host has no closing ]") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else {
            if let colon = hostPort.lastIndex(of: ":") {
                portText = hostPort[hostPort.index(after: colon)...]
                hostPort = hostPort[..<colon]
            }
            host = try decode(hostPort, "host")
        }
        guard !host.isEmpty else { throw bad("it names no host") }
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { throw bad("the port \"\(portText)\" is not a number from 1 to 65535") }
            port = value
        } else {
            port = Self.defaultPort
        }
        self.masked = masked
    }

    /// The text with the password replaced by `***`; works on URLs too broken to parse, so that a
    /// bad URL's error never shows its password either.
    static func mask(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text }
        let afterScheme = text[schemeEnd.upperBound...]
        guard let at = afterScheme.lastIndex(of: "@"), let colon = afterScheme[..<at].firstIndex(of: ":") else { return text }
        return String(text[...colon]) + "***" + String(text[at...])
    }
}
