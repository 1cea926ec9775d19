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
    public init(databasePath: String, wait: Bool) throws {
        path = databasePath + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunLockError.cannotOpen(path: path, errno: errno) }
        if flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw RunLockError.busy(path: path, holder: holder?.isEmpty == false ? holder : nil)
        }
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

public enum RunLockError: Error, CustomStringConvertible {
    case busy(path: String, holder: String?)
    case cannotOpen(path: String, errno: Int32)
    public var description: String {
        switch self {
        case let .busy(path, holder):
            "another pipelined run\(holder.map { " (pid \($0))" } ?? "") is working on this database (lock \(path)); pass --wait to queue behind it"
        case let .cannotOpen(path, e):
            "cannot create the lock file \(path): \(String(cString: strerror(e)))"
        }
    }
}
