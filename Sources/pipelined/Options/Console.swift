import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Messages on standard error that never take the process down.
///
/// Why: `FileHandle.write` traps when the write fails (`2>/dev/full`, a log disk that filled up,
/// a closed pipe), which killed runs in the middle of their work. Progress and messages are a
/// courtesy: once standard error cannot be written, they stop and the work goes on. (SIGPIPE is
/// ignored at start-up, so a closed pipe is an error here, not a signal.)
enum Console {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var broken = false

    static func error(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        guard !broken else { return }
        if !writeAll(text, to: STDERR_FILENO) { broken = true }
    }

    /// Standard output, for results (JSON, `status`); a failed write ends nothing either.
    static func output(_ text: String) { _ = writeAll(text, to: STDOUT_FILENO) }

    /// `write(2)` until all of `text` is out; false when the descriptor refuses it.
    private static func writeAll(_ text: String, to fd: Int32) -> Bool {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }
}

/// Sentences for errors that other libraries word for programmers (Foundation's
/// `NSCocoaErrorDomain Code=…` dumps): what failed, on which path, and why.
enum UserFacing {
    static func describe(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError {
            let path = (cocoa.userInfo[NSFilePathErrorKey] as? String) ?? (cocoa.userInfo[NSURLErrorKey] as? URL)?.path
            var reason: String
            if let underlying = cocoa.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
                reason = String(cString: strerror(Int32(underlying.code)))
            } else {
                switch cocoa.code {
                case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file or folder"
                case .fileWriteVolumeReadOnly: reason = "the volume is read-only"
                case .fileWriteNoPermission, .fileReadNoPermission: reason = "permission denied"
                case .fileWriteOutOfSpace: reason = "no space left on the device"
                case .fileWriteFileExists: reason = "a file is in the way"
                case .fileReadCorruptFile: reason = "unreadable content"
                default: reason = cocoa.localizedDescription
                }
            }
            let verb = cocoa.code.rawValue >= 512 && cocoa.code.rawValue < 1024 ? "cannot write" : "cannot read"
            return "\(verb) \(path ?? "a file"): \(reason)"
        }
        if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        return "\(error)"
    }
}
