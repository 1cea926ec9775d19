import Foundation
import Logging
import PostgresNIO

// Everything here blocks the calling thread on postgres-nio's EventLoopFuture API. Why not its
// async API: the ledger's callers are plain threads (worker lanes) and synchronous code inside
// async contexts; blocking on `Task`s would need a free thread of the cooperative pool to make
// progress, and with every pool thread blocked in a ledger call that deadlocks. NIO's event loops
// are threads of their own, so `.wait()` on their futures always makes progress.

/// A connection problem a retry on a fresh connection can fix, detected by this module rather than
/// reported by postgres-nio.
struct ConnectionTrouble: Error, CustomStringConvertible {
    var description: String
}

enum Blocking {
    /// Waits for `future` for at most `seconds`; also fails soon after `connection` closes.
    ///
    /// Why both: with postgres-nio 1.33.2 a query sent on a connection that is already closed never
    /// completes (not even with cancellation), and a server that vanished without closing its TCP
    /// connections (host powered off, network cut) leaves a query waiting forever. The watchdog is a
    /// repeated task on the future's event loop that fails a promise we wait on instead; completing
    /// a promise twice is a no-op in NIO, so whichever comes first wins.
    static func wait<T: Sendable>(_ future: EventLoopFuture<T>, seconds: TimeInterval, watching connection: PostgresConnection?,
                                  what: String) throws -> T {
        let loop = future.eventLoop
        let promise = loop.makePromise(of: T.self)
        let deadline = NIODeadline.now() + .nanoseconds(Int64(max(seconds, 0.001) * 1e9))
        let watchdog = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { task in
            if let connection, connection.isClosed {
                promise.fail(ConnectionTrouble(description: "the connection closed during \(what)"))
                task.cancel()
            } else if NIODeadline.now() >= deadline {
                promise.fail(ConnectionTrouble(description: "\(what) got no answer within \(Int(seconds.rounded())) s"))
                task.cancel()
            }
        }
        future.whenComplete { result in
            watchdog.cancel()
            promise.completeWith(result)
        }
        return try promise.futureResult.wait()
    }
}

/// How one error from postgres-nio (or from this module) is handled.
struct Classified {
    /// Retrying the whole transaction on a fresh connection may succeed: the connection or the
    /// server went away, or the server asked for a retry (serialization failure, deadlock).
    var transient: Bool
    var sqlState: String
    var message: String

    /// SQLSTATEs that mean "try again": the server is shutting down or starting up (57P01–57P03),
    /// the transaction lost a serialization conflict or a deadlock (40001, 40P01), too many clients
    /// right now (53300: several hosts reconnecting at once after a restart); class 08 is a
    /// connection exception.
    static let transientStates: Set<String> = ["57P01", "57P02", "57P03", "40001", "40P01", "53300"]

    init(_ error: any Error) {
        switch error {
        case let error as PSQLError:
            if error.code == .server, let info = error.serverInfo {
                // PSQLError's description is deliberately generic; the server's own words are here.
                sqlState = info[.sqlState] ?? ""
                var text = info[.message] ?? "(no message)"
                if let detail = info[.detail] { text += " (\(detail))" }
                if let hint = info[.hint] { text += "; hint: \(hint)" }
                message = text
                transient = sqlState.hasPrefix("08") || Self.transientStates.contains(sqlState)
                return
            }
            sqlState = ""
            switch error.code {
            case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection,
                 .messageDecodingFailure, .unexpectedBackendMessage:
                transient = true
                message = Self.describe(connectionError: error)
            default:
                // Authentication and TLS problems, too many parameters, a bad command tag: a retry
                // repeats them.
                transient = false
                message = "\(error.code)" + (error.underlying.map { ": \(Self.describe($0))" } ?? "")
            }
        case let error as ConnectionTrouble:
            (transient, sqlState, message) = (true, "", error.description)
        case let error as ChannelError:
            (transient, sqlState, message) = (true, "", "connection error: \(error)")
        case let error as IOError:
            (transient, sqlState, message) = (true, "", "connection error: \(Self.describe(error))")
        case let error as NIOConnectionError:
            (transient, sqlState, message) = (true, "", Self.describe(error))
        case let error as PostgresDecodingError:
            (transient, sqlState, message) = (false, "", "cannot decode column \(error.columnName) (\(error.postgresType)) as \(error.targetType)")
        default:
            (transient, sqlState, message) = (false, "", String(describing: error))
        }
    }

    private static func describe(connectionError error: PSQLError) -> String {
        let what: String
        switch error.code {
        case .serverClosedConnection, .uncleanShutdown: what = "the server closed the connection"
        case .clientClosedConnection: what = "the connection was closed"
        case .connectionError: what = "cannot connect"
        default: what = "\(error.code)"
        }
        // "cannot connect: 127.0.0.1:5432: Connection refused (errno 111)" reads as one thought
        // only without the first part, which the error's description says already.
        if error.code == .connectionError, let underlying = error.underlying { return describe(underlying) }
        return error.underlying.map { "\(what): \(describe($0))" } ?? what
    }

    /// One line for the errors NIO reports under a PSQLError: `connection refused` rather than a
    /// dump of a struct.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            let reasons = error.connectionErrors.map { failure in
                let target = failure.target.ipAddress.map { "\($0):\(failure.target.port ?? error.port)" } ?? "\(failure.target)"
                return "\(target): \(describe(failure.error))"
            }
            if !reasons.isEmpty { return reasons.joined(separator: "; ") }
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(dns)" }
            return "cannot connect to \(error.host):\(error.port)"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)) + " (errno \(error.errnoCode))"
        case let error as ChannelError:
            if case .connectTimeout(let amount) = error { return "connect timed out after \(amount.nanoseconds / 1_000_000) ms" }
            return "\(error)"
        case let error as PSQLError:
            return Classified(error).message
        default:
            return "\(error)"
        }
    }
}

/// Connections to one database: idle ones are reused, new ones opened as needed (no upper bound:
/// each caller thread holds at most one; the server's max_connections is the limit), and closed
/// or broken ones thrown away.
final class ConnectionPool: @unchecked Sendable {
    // @unchecked: `idle`, `isShutDown` and `nextID` are guarded by `lock`; the rest is immutable.
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []
    private var isShutDown = false
    private var nextID = 0
    let configuration: PostgresConnection.Configuration
    let connectTimeout: TimeInterval
    let logger: Logger

    /// Idle connections kept beyond this are closed: a burst of threads should not pin server
    /// backends (each costs a process and memory there) for the rest of the run.
    static let maximumIdle = 16

    init(url: PostgresURL, connectTimeout: TimeInterval) {
        var configuration = PostgresConnection.Configuration(host: url.host, port: url.port, username: url.user, password: url.password,
                                                              database: url.database, tls: .disable)
        configuration.options.connectTimeout = .nanoseconds(Int64(max(connectTimeout, 0.001) * 1e9))
        // Names the connections in pg_stat_activity, for whoever looks at a busy server.
        configuration.options.additionalStartupParameters = [("application_name", "pipelined")]
        self.configuration = configuration
        self.connectTimeout = connectTimeout
        // postgres-nio logs at debug and trace only; errors reach the caller as thrown errors.
        logger = Logger(label: "pipelined.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    }

    /// An open connection: an idle one whose socket is still up, else a new one.
    func acquire() throws -> PostgresConnection {
        while let connection = popIdle() {
            if !connection.isClosed { return connection }
            Self.discard(connection)
        }
        return try connect()
    }

    private func popIdle() -> PostgresConnection? {
        lock.lock(); defer { lock.unlock() }
        return idle.popLast()
    }

    /// A new connection, within `connectTimeout` (postgres-nio's own timeout covers the TCP connect
    /// and the startup handshake; ours, a little longer, covers anything else that could hang).
    func connect() throws -> PostgresConnection {
        let id: Int = {
            lock.lock(); defer { lock.unlock() }
            nextID += 1
            return nextID
        }()
        let future = PostgresConnection.connect(on: PostgresConnection.defaultEventLoopGroup.any(), configuration: configuration,
                                                id: id, logger: logger)
        do {
            return try Blocking.wait(future, seconds: connectTimeout + 1, watching: nil, what: "connecting")
        } catch {
            // If the connection still comes up after we gave up on it, close it: postgres-nio
            // asserts that a connection is closed before it is deallocated.
            future.whenSuccess { Self.discard($0) }
            throw error
        }
    }

    /// Back to the pool if it is fit for another transaction, else closed.
    func release(_ connection: PostgresConnection, reusable: Bool) {
        let keep: Bool = {
            lock.lock(); defer { lock.unlock() }
            guard reusable, !isShutDown, !connection.isClosed, idle.count < Self.maximumIdle else { return false }
            idle.append(connection)
            return true
        }()
        if !keep { Self.discard(connection) }
    }

    /// Closes every idle connection: after a connection failed, the others most likely point at the
    /// same dead server process, and each would cost a failed attempt.
    func discardIdle() {
        let dropped: [PostgresConnection] = {
            lock.lock(); defer { lock.unlock() }
            defer { idle.removeAll() }
            return idle
        }()
        dropped.forEach(Self.discard)
    }

    func shutDown() {
        lock.lock()
        isShutDown = true
        lock.unlock()
        discardIdle()
    }

    var isClosed: Bool {
        lock.lock(); defer { lock.unlock() }
        return isShutDown
    }

    /// Closes without waiting. The closure keeps the connection alive until the close completes:
    /// postgres-nio asserts (in debug builds) that a connection is closed when it is deallocated.
    static func discard(_ connection: PostgresConnection) {
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }
}
