import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock per database, so that two `run`s never interleave.
///
/// It is an `flock` on `<database>.lock`: the kernel releases it when the holder exits, even by
/// `kill -9`, so a crashed run never leaves a stale lock behind. The holder's pid is written into
/// the file for the message the second run prints.
public final class RunLock: @unchecked Sendable {
    // @unchecked: the descriptor is written once in init and only closed in deinit.
    private let fd: Int32
    public let path: String

    /// - Parameter wait: block until the lock is free instead of failing at once.
    public convenience init(databasePath: String, wait: Bool) throws {
        try self.init(lockFile: databasePath + ".lock", waitSeconds: wait ? .infinity : nil, subject: .database)
    }

    /// What a lock guards, for the message a second run prints.
    public enum Subject: Sendable { case database, outputDirectory }

    /// The lock of an output directory: two runs with different databases must not write one
    /// folder's files (nor remove each other's temporaries).
    public static func outputDirectoryLockFile(_ outputDirectory: URL) -> String {
        outputDirectory.appendingPathComponent(".pipelined.lock").path
    }

    /// - Parameter waitSeconds: nil fails at once when the lock is taken; otherwise wait up to this
    ///   long (`.infinity`: as long as it takes).
    /// - Parameter onWait: called once, with the holder's pid when known, before waiting begins.
    public init(lockFile: String, waitSeconds: Double?, subject: Subject, onWait: ((String?) -> Void)? = nil) throws {
        path = lockFile
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunLockError.cannotOpen(path: path, errno: errno) }
        var acquired = flock(fd, LOCK_EX | LOCK_NB) == 0
        if !acquired, let waitSeconds {
            onWait?(Self.holder(path))
            if waitSeconds == .infinity {
                var status: Int32
                repeat { status = flock(fd, LOCK_EX) } while status != 0 && errno == EINTR
                acquired = status == 0
            } else {
                let deadline = Date().addingTimeInterval(waitSeconds)
                while !acquired && Date() < deadline {
                    usleep(100_000)
                    acquired = flock(fd, LOCK_EX | LOCK_NB) == 0
                }
            }
        }
        if !acquired {
            close(fd)
            throw RunLockError.busy(path: path, holder: Self.holder(path), subject: subject, waited: waitSeconds)
        }
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// The pid the lock file names, if any.
    static func holder(_ path: String) -> String? {
        let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        return text?.isEmpty == false ? text : nil
    }

    /// Whether a live process holds the lock of the database at `databasePath` (a lock file that
    /// does not exist is not held). Opens nothing for writing.
    public static func isHeld(databasePath: String) -> Bool {
        let fd = open(databasePath + ".lock", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else { return true }
        flock(fd, LOCK_UN)
        return false
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

public enum RunLockError: Error, CustomStringConvertible {
    case busy(path: String, holder: String?, subject: RunLock.Subject, waited: Double?)
    case cannotOpen(path: String, errno: Int32)
    public var description: String {
        switch self {
        case let .busy(path, holder, subject, waited):
            "another pipelined run\(holder.map { " (pid \($0))" } ?? "") is working on this \(subject == .database ? "database" : "output directory") (lock \(path))"
                + (waited.map { String(format: "; still busy after waiting %.0f s", $0) } ?? "; pass --wait to queue behind it")
        case let .cannotOpen(path, e):
            "cannot create the lock file \(path): \(String(cString: strerror(e)))"
        }
    }
}

/// Where the jobs that one process does for everybody on a ledger run: discovery and planning,
/// the dataset index, the clean-up of unowned files.
public protocol ExclusiveSection: Sendable {
    func run<T>(_ body: () throws -> T) throws -> T
}

/// The caller already excludes every other process (it holds the `RunLock`s of a local ledger).
public struct HeldByCaller: ExclusiveSection {
    public init() {}
    public func run<T>(_ body: () throws -> T) throws -> T { try body() }
}
