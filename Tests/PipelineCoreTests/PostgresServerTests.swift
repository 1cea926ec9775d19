import Foundation
import PipelineTestSupport
import Testing

/// The test PostgreSQL server the ledger's tests run against: a real server from Debian's packages,
/// on a loopback port, that survives an immediate shutdown with its committed rows and is gone
/// (process and folder) after `stop()`. Fails, never skips, where the server is not installed.
@Suite struct PostgresServerTests {
    @Test func startsCrashesRecoversAndStops() throws {
        let server = try PostgresServer.start(name: "pg-harness")
        defer { try? server.stop() }  // also when an expectation below throws; stopping twice is harmless
        #expect(server.isRunning && server.port > 0)
        #expect(try server.psql("SELECT current_user").trimmingCharacters(in: .whitespacesAndNewlines) == server.user)
        try server.psql("CREATE TABLE t (n integer PRIMARY KEY); INSERT INTO t VALUES (1), (2);")

        // `pg_ctl stop -m immediate`: no checkpoint; the committed rows come back from the WAL.
        let first = server.pid
        try server.crash()
        #expect(!server.isRunning && kill(first, 0) != 0)
        #expect(throws: (any Error).self) { try server.psql("SELECT 1") }
        try server.start()
        #expect(server.isRunning && server.pid != first)
        #expect(try server.psql("SELECT sum(n) FROM t").trimmingCharacters(in: .whitespacesAndNewlines) == "3")

        let last = server.pid
        try server.stop()
        #expect(!server.isRunning && kill(last, 0) != 0)
        #expect(!FileManager.default.fileExists(atPath: server.directory.path))
    }
}
