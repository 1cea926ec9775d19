import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL server for tests: Debian's `initdb` and `pg_ctl` (package `postgresql`)
/// make a new cluster in a temporary folder; the server listens on 127.0.0.1 at a free port (and on
/// a socket in that folder, never in /var/run) and is stopped by its postmaster's pid.
///
/// PostgreSQL refuses to run as root; CI runs as root, so there the cluster belongs to Debian's
/// `postgres` system user and its programs run through `runuser`. Nothing is skipped: a machine
/// without the server programs is an error saying which package to install.
public final class PostgresServer: @unchecked Sendable {
    // @unchecked: `pid` changes only in `start`/`stop`/`crash`, which a test calls from one task.
    public let directory: URL
    public let port: Int
    /// The superuser `initdb` made (trust authentication on loopback: tests need no password).
    public let user = "pipelined"
    public private(set) var pid: Int32 = 0
    let bin: URL

    /// `postgresql://pipelined@127.0.0.1:<port>/<database>`.
    public func url(database: String = "postgres") -> String { "postgresql://\(user)@127.0.0.1:\(port)/\(database)" }

    /// Creates a cluster and starts it; `stop()` ends it and removes its folder.
    public static func start(name: String = "pg") throws -> PostgresServer {
        let server = try PostgresServer(name: name)
        do { try server.start() } catch {
            try? FileManager.default.removeItem(at: server.directory)
            throw error
        }
        return server
    }

    init(name: String) throws {
        bin = try Self.binaries()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        port = try Self.freePort()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try run("/bin/chown", ["postgres:postgres", directory.path], asPostgres: false) }
        try run(bin.appendingPathComponent("initdb").path,
                ["-D", data.path, "-U", user, "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"])
    }

    var data: URL { directory.appendingPathComponent("data") }

    /// Starts the server (again, after `crash()` or `stop(removing: false)`) and waits until it accepts connections.
    public func start() throws {
        try run(bin.appendingPathComponent("pg_ctl").path,
                ["-D", data.path, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60",
                 "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1", "start"])
        let pidFile = try String(contentsOf: data.appendingPathComponent("postmaster.pid"), encoding: .utf8)
        guard let first = pidFile.split(separator: "\n").first, let value = Int32(first) else {
            throw Failure("\(data.path)/postmaster.pid has no pid: \(pidFile.prefix(80))")
        }
        pid = value
    }

    /// `pg_ctl stop -m immediate`: the postmaster gets SIGQUIT and every backend dies at once, as in
    /// a crash; the next `start()` recovers from the write-ahead log.
    public func crash() throws { try signalAndWait(SIGQUIT) }

    /// A fast shutdown (SIGINT: clients are disconnected, the server checkpoints and exits), then the
    /// cluster's folder is removed unless `removing` is false.
    public func stop(removing: Bool = true) throws {
        try signalAndWait(SIGINT)
        if removing { try? FileManager.default.removeItem(at: directory) }
    }

    /// Whether the postmaster process still exists.
    public var isRunning: Bool { pid > 0 && kill(pid, 0) == 0 }

    private func signalAndWait(_ signal: Int32) throws {
        guard pid > 0 else { return }
        kill(pid, signal)
        let deadline = Date().addingTimeInterval(60)
        while isRunning {
            if Date() > deadline {
                kill(pid, SIGKILL)
                throw Failure("PostgreSQL (pid \(pid)) did not exit within 60 s of signal \(signal); killed")
            }
            usleep(20_000)
        }
        pid = 0
    }

    /// Runs `psql` against `database` with `sql`; returns what it printed (unaligned, tuples only).
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try run(bin.appendingPathComponent("psql").path,
                ["-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                asPostgres: false)
    }

    // MARK: - Helpers

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
    static func binaries() throws -> URL {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).compactMap(Int.init).sorted()
        for version in versions.reversed() {
            let bin = root.appendingPathComponent("\(version)/bin")
            if FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent("initdb").path) { return bin }
        }
        throw Failure("PostgreSQL's server programs (initdb, pg_ctl) are not installed: install Debian's `postgresql` package "
                      + "(scripts/setup.sh --tests does)")
    }

    /// A port the kernel just gave out on loopback (bound and released: the server takes it next).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Failure("could not bind a loopback port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a program and returns its standard output; as root, server programs run as `postgres`.
    @discardableResult
    func run(_ program: String, _ arguments: [String], asPostgres: Bool = true) throws -> String {
        let process = Process()
        // Through bash, which closes every descriptor above 2 first: Foundation's Process learns that
        // its child ended when a socket the child inherits closes, and the server `pg_ctl` starts would
        // inherit it too and hold it open for as long as it runs.
        let closing = ["/bin/bash", "-c", #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec "$@""#, "bash", program]
        if asPostgres && getuid() == 0 {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", "postgres", "--"] + closing + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: closing[0])
            process.arguments = Array(closing.dropFirst()) + arguments
        }
        // Output goes to files read after the exit, not pipes: nothing that outlives the command (the
        // server) can keep a read waiting.
        let capture = directory.appendingPathComponent("command-\(UUID().uuidString.prefix(8))")
        FileManager.default.createFile(atPath: capture.path + ".out", contents: nil)
        FileManager.default.createFile(atPath: capture.path + ".err", contents: nil)
        defer { try? FileManager.default.removeItem(atPath: capture.path + ".out"); try? FileManager.default.removeItem(atPath: capture.path + ".err") }
        let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: capture.path + ".out"))
        let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: capture.path + ".err"))
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try? outHandle.close(); try? errHandle.close()
        let out = (try? Data(contentsOf: URL(fileURLWithPath: capture.path + ".out"))) ?? Data()
        let err = (try? Data(contentsOf: URL(fileURLWithPath: capture.path + ".err"))) ?? Data()
        guard process.terminationStatus == 0 else {
            var log = ""
            if program.hasSuffix("pg_ctl") {
                log = (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)).map { "\nserver log:\n" + $0.suffix(2000) } ?? ""
            }
            throw Failure("\(program) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): "
                          + String(decoding: err + out, as: UTF8.self).suffix(2000) + log)
        }
        return String(decoding: out, as: UTF8.self)
    }

    deinit {
        // A test that forgot to stop its server must not leave it running after the test process ends.
        if isRunning { kill(pid, SIGINT) }
    }
}
