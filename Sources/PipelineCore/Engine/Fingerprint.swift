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

    /// The content fingerprint of a file: its size, first MiB and last MiB.
    ///
    /// Why partial: a full hash of a multi-gigabyte dataset on every cron run costs more than the
    /// decode it protects; size + head + tail catch replaced, re-encoded, truncated and appended
    /// files, and mtime is compared separately.
    public static func ofFile(at url: URL, size: Int64) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        let window = 1 << 20
        var bytes = Array("\(size)|".utf8)
        bytes += try handle.read(upToCount: window) ?? Data()
        if size > Int64(window) {
            try handle.seek(toOffset: UInt64(max(Int64(window), size - Int64(window))))
            bytes += try handle.readToEnd() ?? Data()
        }
        return String(sha256(bytes).prefix(32))
    }
}
