import Foundation
import GRDB

/// The pipeline's SQLite database: the resume state of every item.
///
/// One `PipelineStore` owns one `DatabasePool` (WAL) for the process's lifetime. Every state change
/// is one short write transaction behind an intent-named method, so a crash between two calls leaves
/// the database at one of them, never between.
public struct PipelineStore: Ledger {
    public let writer: any DatabaseWriter
    public let path: String?

    /// Opens (creating if needed) the database at `path` and migrates it. An existing database is
    /// checked first, on a read-only connection:
    /// - `PRAGMA quick_check`: a run must not write into a database with damaged pages, which would
    ///   spread the damage and report success;
    /// - on a filesystem other hosts can mount (NFS, SMB, Lustre, FUSE, …; `FileSystemKind`), that no
    ///   other host is running on it: SQLite's write-ahead log works among the processes of one host
    ///   only, and two hosts writing would corrupt it silently. Runs of other hosts that ended (or
    ///   died: no heartbeat for two leases) do not count, so a database can move between hosts.
    /// `host`, `fileSystem` and `now` are the caller's facts, given by tests.
    public init(path: String, host: String = ProcessInfo.processInfo.hostName, fileSystem: FileSystemKind? = nil, now: Date = Date()) throws {
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: path) {
            var configuration = Self.configuration()
            configuration.readonly = true
            let lines: [String]
            let queue: DatabaseQueue
            do {
                queue = try DatabaseQueue(path: path, configuration: configuration)
                lines = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            } catch {
                throw StoreError.damaged(path: path, detail: "\(error)")
            }
            guard lines == ["ok"] else { throw StoreError.damaged(path: path, detail: lines.prefix(3).joined(separator: "; ")) }
            if let kind = fileSystem ?? FileSystemKind.of(path: path), kind.shared,
               let other = try queue.read({ try Self.liveRunOfAnotherHost(db: $0, host: host, now: now) }) {
                try? queue.close()
                throw StoreError.sharedBetweenHosts(path: path, fileSystem: kind.name, host: other.host, run: other.id ?? 0, heartbeat: other.heartbeatAt)
            }
            try queue.close()
        }
        let pool: DatabasePool
        do { pool = try DatabasePool(path: path, configuration: Self.configuration()) } catch {
            throw StoreError.cannotOpen(path: path, message: "\(error)")
        }
        do { try self.init(writer: pool, path: path) } catch let error as DatabaseError {
            throw StoreError.cannotOpen(path: path, message: "\(error)")
        }
    }

    /// Opens the database at `path` for reading only (`status`, `report`, `export`): the file is
    /// never written, so it works on a read-only mount, and a database that an older release wrote
    /// is refused with the reason instead of being migrated behind a reader's back.
    public init(readingOnly path: String) throws {
        var configuration = Self.configuration()
        configuration.readonly = true
        let migrator = Migrations.migrator
        func open(_ location: String) throws -> DatabaseQueue {
            let queue = try DatabaseQueue(path: location, configuration: configuration)
            try queue.read { db in
                if try migrator.hasBeenSuperseded(db) { throw StoreError.newerSchema(path: path) }
                if try !migrator.hasCompletedMigrations(db) { throw StoreError.needsMigration(path: path) }
            }
            return queue
        }
        do {
            writer = try open(path)
        } catch let error as DatabaseError {
            // A WAL database in a folder that cannot be written (a read-only mount) cannot even be
            // read the usual way: SQLite wants to create its shared-memory file. Nobody can write
            // there either, so the file is opened as immutable.
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            guard access(folder, W_OK) != 0 else { throw StoreError.cannotOpen(path: path, message: "\(error)") }
            var allowed = CharacterSet.urlPathAllowed
            allowed.remove(charactersIn: "?#%")
            let uri = "file:" + (URL(fileURLWithPath: path).standardizedFileURL.path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path) + "?immutable=1"
            do { writer = try open(uri) } catch let second as DatabaseError {
                throw StoreError.cannotOpen(path: path, message: "\(error) (and read as immutable: \(second))")
            }
        }
        self.path = path
    }

    /// An in-memory store with the production configuration, for tests.
    public static func inMemory() throws -> PipelineStore {
        try PipelineStore(writer: DatabaseQueue(configuration: configuration()), path: nil)
    }

    private init(writer: any DatabaseWriter, path: String?) throws {
        self.writer = writer
        self.path = path
        let migrator = Migrations.migrator
        if try writer.read({ try migrator.hasBeenSuperseded($0) }) {
            throw StoreError.newerSchema(path: path ?? ":memory:")
        }
        try migrator.migrate(writer)
    }

    /// One write transaction (`Ledger`); `now` nil is this host's clock.
    public func transaction<T>(now: Date?, _ body: (any SQLSession) throws -> T) throws -> T {
        try writer.write { db in try body(GRDBSession(db, now: now ?? Date())) }
    }

    public func read<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try writer.read { db in try body(GRDBSession(db, now: Date())) }
    }

    static func configuration() -> Configuration {
        var c = Configuration()
        c.foreignKeysEnabled = true
        // Other processes (a `status` beside a `run`) share the file; wait rather than fail on a lock.
        c.busyMode = .timeout(30)
        return c
    }

    // MARK: Runs

    /// The newest run of another host that is still alive (running, heartbeat within two leases of
    /// `now`; host clocks may disagree by a little, not by minutes).
    static func liveRunOfAnotherHost(db: Database, host: String, now: Date) throws -> RunRecord? {
        guard try db.tableExists("run") else { return nil }
        return try RunRecord.filter(Column("host") != host && Column("status") == "running" && Column("heartbeatAt") > now.addingTimeInterval(-2 * Lease.duration))
            .order(Column("id").desc).fetchOne(db)
    }





    static func interruptedReason(run: Int64?) -> String {
        "\(interruptedPrefix) (run \(run.map(String.init) ?? "?") ended while this item was in progress)"
    }
    static func releasedReason(run: Int64) -> String {
        "\(interruptedPrefix) (run \(run) stopped and gave this item back before finishing it)"
    }
    /// Marks a pending row as one whose run died; the engine retries such rows last.
    public static let interruptedPrefix = "interrupted"

    // MARK: Sources

    /// How a duplicate's problem starts (`markingDuplicates` sets and clears it; nothing else does).
    static let duplicatePrefix = "duplicate of "

    /// `files` with every copy of an earlier source's content marked as a duplicate of it.
    ///
    /// Rule: among present files with the same whole-file hash, the one known longest (lowest
    /// source id; new files after known ones, in path order) is the original; the others get the
    /// problem "duplicate of <path>". A duplicate whose original disappears loses the problem at the
    /// next sync, which counts as a change, so it is processed in its place. Hashes from before v2
    /// (size and two MiB) are not compared: they cannot prove equality.
    static func markingDuplicates(_ files: [DiscoveredFile], known: [String: SourceRecord]) -> [DiscoveredFile] {
        func hash(_ file: DiscoveredFile) -> String? {
            guard file.problem == nil || file.problem!.hasPrefix(duplicatePrefix) else { return nil }
            let h = file.contentHash ?? known[file.relativePath]?.contentHash
            return h?.count == 64 ? h : nil
        }
        let order = files.indices.sorted { a, b in
            let (x, y) = (known[files[a].relativePath]?.id ?? Int64.max, known[files[b].relativePath]?.id ?? Int64.max)
            return x != y ? x < y : files[a].relativePath < files[b].relativePath
        }
        var originals: [String: String] = [:]
        var marked = files
        for index in order {
            // Discovery never sets this problem; a stale one from an earlier sync is recomputed here.
            if marked[index].problem?.hasPrefix(duplicatePrefix) == true { marked[index].problem = nil }
            guard let h = hash(files[index]) else { continue }
            if let original = originals[h] {
                marked[index].problem = "\(duplicatePrefix)\(original) (the same content, byte for byte); remove one, or set [broken] reject_duplicates = false"
            } else {
                originals[h] = files[index].relativePath
            }
        }
        return marked
    }


    /// Whether `file` may differ from what `known` recorded, so that its content must be hashed:
    /// size or mtime moved, or it was gone (rsync's quick check; an unchanged size and mtime is
    /// taken as unchanged content).
    public static func needsHash(_ file: DiscoveredFile, known: SourceRecord?) -> Bool {
        guard file.problem == nil else { return false }
        guard let known else { return true }
        // A known problem may be gone now (a fixed permission): hash again, but not a known
        // duplicate's, whose hash is current and whose problem only discovery's comparison clears.
        let problemMayHaveCleared = known.problem.map { !$0.hasPrefix(duplicatePrefix) } ?? false
        return known.size != file.size || known.mtime != file.mtime || problemMayHaveCleared
    }
}

/// How long a claim stays valid without a heartbeat (the engine beats every `Lease.heartbeat`).
public enum Lease {
    // nonisolated(unsafe): written once by `configure`, at start, before any thread reads it.
    nonisolated(unsafe) public private(set) static var duration: TimeInterval = 120
    /// A sixth of the lease, not a third: a worker whose heartbeats are held up (a database
    /// restart, a transaction retried for a while) still keeps its leases after missing several.
    public static var heartbeat: TimeInterval { duration / 6 }
    /// Sets the lease (`pipelined work --lease`); call once at start. Every worker on one ledger
    /// should use the same: a worker counts another as dead once its heartbeat is older than its
    /// own lease.
    public static func configure(seconds: TimeInterval) { duration = seconds }
}

/// A file found under the input directory.
public struct DiscoveredFile: Sendable, Equatable {
    public var relativePath: String
    public var size: Int64
    public var mtime: Double
    /// SHA-256 of the content, computed only where `PipelineStore.needsHash` says so.
    public var contentHash: String?
    /// Why the file cannot be processed as it is (see `SourceRecord.problem`).
    public var problem: String?

    public init(relativePath: String, size: Int64, mtime: Double, contentHash: String?, problem: String? = nil) {
        self.relativePath = relativePath
        self.size = size
        self.mtime = mtime
        self.contentHash = contentHash
        self.problem = problem
    }
}

public struct SourceSync: Sendable, Equatable, Codable {
    public var new = 0, changed = 0, gone = 0, returned = 0
    public init(new: Int = 0, changed: Int = 0, gone: Int = 0, returned: Int = 0) {
        self.new = new; self.changed = changed; self.gone = gone; self.returned = returned
    }
}

/// What a stage's outcome writes to the store.
public struct RecordedOutcome: Sendable {
    public var state: ItemState
    public var reason: String?
    public var metrics: String?
    public var artifactPath: String?
    public var seconds: Double
    public var nextAttemptAt: Date?
    /// What the outcome hands on (a failure hands on nothing: whatever the result recorded before
    /// is dropped, and its files are retired).
    public var handOn: HandOn

    public init(state: ItemState, reason: String? = nil, metrics: String? = nil, artifactPath: String? = nil, seconds: Double,
                nextAttemptAt: Date? = nil, handOn: HandOn = HandOn()) {
        self.state = state
        self.reason = reason
        self.metrics = metrics
        self.artifactPath = artifactPath
        self.seconds = seconds
        self.nextAttemptAt = nextAttemptAt
        self.handOn = handOn
    }
}

public struct SourceUpdate: Sendable {
    public var probe: String
    public var durationSeconds: Double
    public init(probe: String, durationSeconds: Double) { self.probe = probe; self.durationSeconds = durationSeconds }
}

public enum StoreError: Error, CustomStringConvertible {
    case newerSchema(path: String)
    case needsMigration(path: String)
    case cannotOpen(path: String, message: String)
    case damaged(path: String, detail: String)
    case massRemoval(gone: Int, active: Int, limit: Double, examples: [String])
    case sharedBetweenHosts(path: String, fileSystem: String, host: String, run: Int64, heartbeat: Date)
    case leaseLost(stage: String, item: String, run: Int64?, attempt: Int)
    public var description: String {
        switch self {
        case let .newerSchema(path):
            "\(path) was written by a newer pipelined; upgrade pipelined (this version will not touch it)"
        case let .needsMigration(path):
            "\(path) was written by an older pipelined and needs upgrading; `pipelined run` with this version upgrades it (this command only reads)"
        case let .cannotOpen(path, message):
            "cannot open the database \(path): \(message)"
        case let .damaged(path, detail):
            "the database \(path) is damaged (PRAGMA quick_check: \(detail)); nothing was written. Restore it from a backup, or move it aside to start over (every result in it is then recomputed)"
        case let .sharedBetweenHosts(path, fileSystem, host, run, heartbeat):
            "the database \(path) is on a filesystem other hosts share (\(fileSystem)), and host \(host) is running pipelined on it "
                + "(run #\(run), last heartbeat \(ISO8601DateFormatter().string(from: heartbeat))). SQLite cannot be written from two hosts "
                + "there without corrupting it, so nothing was opened for writing; run pipelined on one host at a time (start this run again "
                + "once that one has ended), or keep the database on a local disk with --db"
        case let .leaseLost(stage, item, run, attempt):
            "\(stage) on \(item): run \(run.map(String.init) ?? "?") lost its claim (attempt \(attempt)) before it could record the outcome, "
                + "because its lease expired (was the process paused or the machine suspended?); the item was handed to another run, "
                + "and this outcome was not recorded"
        case let .massRemoval(gone, active, limit, examples):
            "\(gone) of \(active) inputs are missing from the input directory (e.g. \(examples.joined(separator: ", "))), more than run.max_gone_share (\(Int(limit * 100)) %) allows at once; "
                + "is the input folder's disk mounted? Nothing was changed. If they were removed on purpose, run again with --allow-mass-removal"
        }
    }
}
