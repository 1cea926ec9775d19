import CFFmpeg
import CFFmpegLog

/// Every failure at the FFmpeg boundary, with the function that failed and the file it was reading.
public enum MediaError: Error, CustomStringConvertible, Sendable {
    /// An FFmpeg call returned a negative `AVERROR` other than EAGAIN/EOF.
    case ffmpeg(function: String, code: Int32, message: String)
    /// The file has no stream of the kind a caller needs.
    case noStream(kind: String, path: String)
    /// No decoder or encoder is compiled into this FFmpeg for the codec.
    case codecUnavailable(name: String)
    /// An allocation returned NULL.
    case allocation(String)
    /// The source no longer matches what the scan recorded (it changed on disk since).
    case sourceChanged(path: String, detail: String)

    public var description: String {
        switch self {
        case let .ffmpeg(function, code, message):
            return "\(function) failed: \(message) (AVERROR \(code))"
        case let .noStream(kind, path):
            return "\(path) has no \(kind) stream"
        case let .codecUnavailable(name):
            return "this FFmpeg build has no codec \"\(name)\"; install Debian's libavcodec-extra or pick another codec"
        case let .allocation(what):
            return "out of memory while allocating \(what)"
        case let .sourceChanged(path, detail):
            return "\(path) changed since it was scanned (\(detail)); the next run rescans it"
        }
    }
}

/// The outcome of a step of FFmpeg's send/receive state machines. EAGAIN and EOF are control
/// flow, never errors (the NIO `syscall` rule: expected conditions are results).
public enum Step: Sendable, Equatable {
    case ok
    case again
    case endOfStream
}

/// FFmpeg's message for an error code.
public func ffmpegMessage(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    av_strerror(code, &buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Routes FFmpeg's log into a per-thread "last error" buffer (quoted by `MediaError`) instead of
/// stderr. Idempotent; called by every wrapper that opens something.
public let installFFmpegLogCapture: Void = cffmpeg_install_log_capture()

/// FFmpeg's last error-level log line on this thread, consumed by the call.
func takeLastFFmpegLogLine() -> String? {
    let line = String(cString: cffmpeg_last_error_line())
    cffmpeg_clear_last_error()
    return line.isEmpty ? nil : line
}

/// The one checking helper for FFmpeg calls that return a status: a negative value becomes a
/// `MediaError.ffmpeg` naming the function; a non-negative value is returned.
@discardableResult
@inline(__always)
public func ff(_ function: @autoclosure () -> String, _ code: Int32) throws(MediaError) -> Int32 {
    if code < 0 { throw .ffmpeg(function: function(), code: code, message: describe(code)) }
    return code
}

/// Like `ff`, for the send/receive calls where EAGAIN and EOF are part of the protocol.
@inline(__always)
public func ffStep(_ function: @autoclosure () -> String, _ code: Int32) throws(MediaError) -> Step {
    if code >= 0 { return .ok }
    if code == cffmpeg_averror_eagain() { return .again }
    if code == cffmpeg_averror_eof() { return .endOfStream }
    throw .ffmpeg(function: function(), code: code, message: describe(code))
}

/// The code's message, with FFmpeg's own explanation from its log when it wrote one.
private func describe(_ code: Int32) -> String {
    let base = ffmpegMessage(code)
    guard let detail = takeLastFFmpegLogLine(), detail != base else { return base }
    return "\(base): \(detail)"
}
