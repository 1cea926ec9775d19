import CFFmpeg
import Foundation

/// SHA-256 digests (libavutil's implementation; no extra dependency).
public enum Fingerprint {
    /// Hex SHA-256 of `bytes`.
    public static func sha256(_ bytes: some Sequence<UInt8>) -> String {
        var ctx: OpaquePointer? = nil
        guard av_hash_alloc(&ctx, "SHA256") >= 0, ctx != nil else { preconditionFailure("libavutil has no SHA256") }
        defer { av_hash_freep(&ctx) }
        av_hash_init(ctx)
        let array = Array(bytes)
        array.withUnsafeBufferPointer { av_hash_update(ctx, $0.baseAddress, $0.count) }
        var out = [UInt8](repeating: 0, count: 32)
        av_hash_final(ctx, &out)
        return out.map { String(format: "%02x", $0) }.joined()
    }

    /// A short fingerprint of several parts (stage id, code version, configuration JSON, upstream).
    public static func of(_ parts: String...) -> String {
        String(sha256(Array(parts.joined(separator: "\u{1F}").utf8)).prefix(16))
    }

    /// JSON of an `Encodable` with sorted keys, for fingerprints that change only when values do.
    public static func canonicalJSON<T: Encodable>(_ value: T) -> String { metricsJSON(value) }

    /// SHA-256 of a file's whole content (64 hex digits): the content fingerprint of a source.
    ///
    /// Why whole: a fingerprint of the size and the first and last MiB (what databases before v2
    /// hold) calls a file whose middle was rewritten in place unchanged. Discovery only hashes
    /// files that are new or whose size or mtime changed, so an unchanged dataset costs one `stat`
    /// per file and a changed file is read once more (stage 1 decodes all of it anyway).
    public static func ofWholeFile(atPath path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FingerprintError.unreadable(path: path, errno: errno) }
        defer { close(fd) }
        var ctx: OpaquePointer? = nil
        guard av_hash_alloc(&ctx, "SHA256") >= 0, ctx != nil else { preconditionFailure("libavutil has no SHA256") }
        defer { av_hash_freep(&ctx) }
        av_hash_init(ctx)
        let chunk = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw FingerprintError.unreadable(path: path, errno: errno)
            }
            if n == 0 { break }
            av_hash_update(ctx, buffer.assumingMemoryBound(to: UInt8.self), Int(n))
        }
        var out = [UInt8](repeating: 0, count: 32)
        av_hash_final(ctx, &out)
        return out.map { String(format: "%02x", $0) }.joined()
    }
}

public enum FingerprintError: Error, CustomStringConvertible {
    case unreadable(path: String, errno: Int32)
    public var description: String {
        switch self {
        case let .unreadable(path, e): "cannot read \(path): \(String(cString: strerror(e)))"
        }
    }
}
