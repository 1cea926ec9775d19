import Foundation
import Inference
import PipelineCore

/// LatentSync's SyncNet training data (`latentsync/data/syncnet_dataset.py`) over the curated
/// dataset: clips from `fileslist.txt` or `manifest.jsonl`; per sample a random clip of ≥ 32 frames,
/// 16 consecutive frames at a random start `s` (label 1) or at another start of the same clip
/// (label 0), each with probability ½, and always the mel window of `s`. Frames are resized to
/// `resolution` and only their lower half is kept, RGB in [−1, 1], stacked on channels.
///
/// Differences from the reference, on purpose:
/// - Samples are a pure function of (seed, sample number): resuming at step k draws exactly the
///   samples an uninterrupted run would have, and loader threads may finish in any order.
/// - A start is drawn only where the mel window fits (the reference retries on a short window).
/// - Mel spectrograms are cached per clip under the clip's *content* fingerprint (size, first and
///   last MiB), never its basename (the reference collides on equal basenames across datasets).
public struct SyncNetClips: Sendable {
    public struct Clip: Sendable, Equatable {
        public var path: String
        public var frames: Int
    }

    public static let windowFrames = 16
    /// The reference skips clips shorter than this (two windows' worth).
    public static let minimumFrames = 32

    public var clips: [Clip]
    /// Clips left out, with the reason (too short, unreadable).
    public var skipped: [(path: String, reason: String)]

    /// Reads a dataset index: `manifest.jsonl` (frame counts from its `frames` ranges) or a
    /// `fileslist.txt` (frame counts probed from each file). Relative paths resolve against the list's folder.
    public static func load(_ list: URL, fps: Int = 25) throws -> SyncNetClips {
        let text: String
        do { text = try String(contentsOf: list, encoding: .utf8) } catch {
            throw TrainingError.data("cannot read the clip list \(list.path): \(error.localizedDescription)")
        }
        let folder = list.deletingLastPathComponent()
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : folder.appendingPathComponent(p).standardizedFileURL.path }
        var clips: [Clip] = [], skipped: [(String, String)] = []
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        for (number, line) in lines.enumerated() {
            let path: String, frames: Int
            if line.hasPrefix("{") {
                guard let entry = try? JSONDecoder().decode(DatasetIndex.Entry.self, from: Data(line.utf8)), entry.frames.count == 2 else {
                    throw TrainingError.data("\(list.path) line \(number + 1) is not a manifest entry")
                }
                path = resolve(entry.video); frames = entry.frames[1] - entry.frames[0]
                guard FileManager.default.fileExists(atPath: path) else { skipped.append((path, "missing")); continue }
            } else {
                path = resolve(line)
                guard FileManager.default.fileExists(atPath: path) else { skipped.append((path, "missing")); continue }
                do { frames = try probeFrames(path, fps: fps) } catch {
                    skipped.append((path, "unreadable: \(error)")); continue
                }
            }
            guard frames >= minimumFrames else { skipped.append((path, "\(frames) frames, fewer than \(minimumFrames)")); continue }
            clips.append(Clip(path: path, frames: frames))
        }
        guard !clips.isEmpty else { throw TrainingError.data("\(list.path) lists no usable clip (\(skipped.count) skipped\(skipped.first.map { ": \($0.0) \($0.1)" } ?? ""))") }
        return SyncNetClips(clips: clips, skipped: skipped)
    }

    /// A clip's frame count from its video stream's duration at `fps` (published clips are constant-rate).
    static func probeFrames(_ path: String, fps: Int) throws -> Int {
        let demuxer = try Demuxer(path: path)
        guard let video = demuxer.pipelineStreams.video, let seconds = demuxer.info(video).declaredDuration else {
            throw MediaError.noStream(kind: "video", path: path)
        }
        return Int((seconds * Double(fps)).rounded())
    }

    /// Held-out clips for validation: the `count` clips whose path hashes lowest (stable as the list
    /// grows: a clip never moves from validation into training because others were added).
    public func split(validationClips count: Int) -> (train: [Clip], validation: [Clip]) {
        let ranked = clips.sorted { Fingerprint.of("validation", $0.path) < Fingerprint.of("validation", $1.path) }
        let validation = Array(ranked.prefix(count))
        let held = Set(validation.map(\.path))
        return (clips.filter { !held.contains($0.path) }, validation)
    }
}

/// Decoded clips for sampling: the lower halves of every frame at the training resolution (RGB
/// bytes) and the clip's whole mel spectrogram. Keeps recently used clips in memory up to a byte
/// budget; mel spectrograms also persist on disk, keyed by the file's content.
public final class SyncNetClipStore: @unchecked Sendable {
    // @unchecked: the cache is guarded by `lock`; decoded clips are immutable once stored.
    public struct Decoded: Sendable {
        /// frames × (resolution/2) × resolution × 3 bytes.
        public let halves: [UInt8]
        public let frames: Int
        /// 80 rows of `melColumns` values, row-major.
        public let mel: [Float]
        public let melColumns: Int
        var bytes: Int { halves.count + mel.count * 4 }
    }

    public let resolution: Int
    let melCache: URL?
    let budget: Int
    private let lock = NSLock()
    private var cache: [String: Decoded] = [:]
    private var order: [String] = []
    private var held = 0
    private var failed: [String: String] = [:]

    /// Clips that could not be decoded, with the reason; samplers skip them.
    public var failures: [String: String] { lock.withLock { failed } }

    public init(resolution: Int, melCache: URL?, budgetBytes: Int) {
        self.resolution = resolution; self.melCache = melCache; budget = budgetBytes
    }

    /// The decoded clip; its frame count comes from the clip list (manifest or probe), not a second probe.
    public func clip(_ clip: SyncNetClips.Clip) throws -> Decoded {
        let path = clip.path
        if let hit = lock.withLock({ () -> Decoded? in
            guard let hit = cache[path] else { return nil }
            order.removeAll { $0 == path }; order.append(path)
            return hit
        }) { return hit }
        if let reason = lock.withLock({ failed[path] }) { throw TrainingError.data("\(path): \(reason)") }
        let decoded: Decoded
        do { decoded = try decode(path, frames: clip.frames) } catch {
            lock.withLock { failed[path] = "\(error)" }
            throw error
        }
        lock.withLock {
            guard cache[path] == nil else { return }
            cache[path] = decoded; order.append(path); held += decoded.bytes
            while held > budget, order.count > 1 {
                let evicted = order.removeFirst()
                held -= cache.removeValue(forKey: evicted)?.bytes ?? 0
            }
        }
        return decoded
    }

    private func decode(_ path: String, frames n: Int) throws -> Decoded {
        let r = resolution, half = r / 2
        let images = try ClipFrames.read(path, indices: Array(0..<n))
        var halves = [UInt8](); halves.reserveCapacity(n * half * r * 3)
        for i in 0..<n {
            let image = images[i]!
            // The reference resizes with bicubic antialiasing; area averaging is OpenCV's antialiased downscale.
            let face = image.width == r && image.height == r ? image : try image.resized(width: r, height: r, interpolation: .area)
            halves += face.pixels[(half * r * 3)..<(r * r * 3)]
        }
        let (mel, columns) = try self.mel(path)
        return Decoded(halves: halves, frames: n, mel: mel, melColumns: columns)
    }

    /// The whole clip's 80-band mel (LatentSync's `audio.melspectrogram`), from the disk cache when present.
    func mel(_ path: String) throws -> ([Float], Int) {
        // Keyed by the whole content: a clip rewritten in place must not reuse another's mel.
        let key = String(try Fingerprint.ofWholeFile(atPath: path).prefix(32))
        let cached = melCache?.appendingPathComponent("\(key).mel-v1.f32")
        if let cached, let data = try? Data(contentsOf: cached), data.count >= 4, data.count % 4 == 0 {
            let values = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            if values.count % 80 == 0 { return (values, values.count / 80) }
        }
        let spectrogram = try MelSpectrogram().spectrogram(AudioFile.samples(path))
        let columns = spectrogram.first?.count ?? 0
        let values = spectrogram.flatMap { $0.map(Float.init) }
        if let cached, let folder = melCache {
            try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try? values.withUnsafeBytes { Data($0) }.write(to: cached, options: .atomic)
        }
        return (values, columns)
    }
}

/// Draws samples as pure functions of their number, and assembles batches on background threads.
public struct SyncNetSampler: Sendable {
    public let clips: [SyncNetClips.Clip]
    public let store: SyncNetClipStore
    public let seed: UInt64

    public init(clips: [SyncNetClips.Clip], store: SyncNetClipStore, seed: UInt64) {
        self.clips = clips; self.store = store; self.seed = seed
    }

    public var frameShape: [Int] { [3 * SyncNetClips.windowFrames, store.resolution / 2, store.resolution] }

    /// Sample `number`: (frames 16·H·W·3 RGB bytes, mel 80·52, label).
    public func sample(_ number: Int) throws -> (frames: [UInt8], mel: [Float], label: Float) {
        var rng = SeededGenerator(seed: seed &+ UInt64(number) &* 0x9E37_79B9_7F4A_7C15)
        for _ in 0..<8 {
            let clip = clips[Int(rng.next() % UInt64(clips.count))]
            // A clip that cannot be decoded is set aside (and reported) rather than ending the run.
            guard let decoded = try? store.clip(clip) else { continue }
            let w = SyncNetClips.windowFrames
            // Starts whose 16 frames exist and whose 52 mel columns exist.
            let melLimit = (0...(decoded.frames - w)).last { Int(80.0 * Double($0) / 25.0) + MelSpectrogram.windowColumns <= decoded.melColumns }
            guard let maxStart = melLimit, decoded.frames >= SyncNetClips.minimumFrames, maxStart >= 1 else { continue }
            let start = Int(rng.next() % UInt64(maxStart + 1))
            var wrong = Int(rng.next() % UInt64(decoded.frames - w))  // any other start of the clip
            if wrong >= start { wrong += 1 }
            let positive = rng.next() & 1 == 1
            let first = positive ? start : wrong
            return (frames(decoded, from: first), mel(decoded, start: start), positive ? 1 : 0)
        }
        let failed = store.failures.prefix(3).map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        throw TrainingError.data("sample \(number): eight clips in a row had no usable window (unreadable, or audio shorter than the video?) \(failed)")
    }

    /// Frames [first, first + 16) as stored: 16 × (H/2) × W × 3 bytes (the device makes them the model's input).
    func frames(_ d: SyncNetClipStore.Decoded, from first: Int) -> [UInt8] {
        let frameBytes = store.resolution / 2 * store.resolution * 3
        return Array(d.halves[(first * frameBytes)..<((first + SyncNetClips.windowFrames) * frameBytes)])
    }

    /// Mel columns [int(3.2·start), +52) of every band.
    func mel(_ d: SyncNetClipStore.Decoded, start: Int) -> [Float] {
        let first = Int(80.0 * Double(start) / 25.0), n = MelSpectrogram.windowColumns
        var out = [Float](); out.reserveCapacity(80 * n)
        for band in 0..<80 { out += d.mel[(band * d.melColumns + first)..<(band * d.melColumns + first + n)] }
        return out
    }

    /// Samples [first, first + count) as one batch, built by `threads` threads.
    public func batch(first: Int, count: Int, threads: Int) throws -> SyncNetBatch {
        let samples = try concurrentMap(count, workers: threads) { try sample(first + $0) }
        return SyncNetBatch(frames: samples.flatMap(\.frames), mel: samples.flatMap(\.mel), labels: samples.map(\.label), frameShape: frameShape)
    }
}

/// Keeps the next batches ready: a background thread builds (and uploads) batch k + 1 … k + depth
/// while the trainer works on batch k, so the GPU does not wait for decoding.
public final class BatchPrefetcher<Batch: Sendable>: @unchecked Sendable {
    // @unchecked: all state is guarded by `condition`.
    private let condition = NSCondition()
    private var ready: [Int: Result<Batch, any Error>] = [:]
    private var next: Int
    private var consumed: Int
    private var stopped = false
    private let depth: Int

    /// Builds batch `index` for every index from `start` on with `make`, at most `depth` ahead of the consumer.
    public init(start: Int, depth: Int = 2, make: @escaping @Sendable (Int) throws -> Batch) {
        next = start; consumed = start; self.depth = depth
        let thread = Thread { [weak self] in
            while let index = self?.claim() {
                let result = Result { try make(index) }
                self?.deliver(index, result)
            }
        }
        thread.stackSize = 1 << 22
        thread.start()
    }

    private func claim() -> Int? {
        condition.lock(); defer { condition.unlock() }
        while !stopped && next >= consumed + depth { condition.wait() }
        guard !stopped else { return nil }
        next += 1
        return next - 1
    }

    private func deliver(_ index: Int, _ result: Result<Batch, any Error>) {
        condition.lock(); ready[index] = result; condition.broadcast(); condition.unlock()
    }

    /// Batch `index` (the next one in order), waiting for it if needed.
    public func take(_ index: Int) throws -> Batch {
        condition.lock()
        consumed = index + 1
        condition.broadcast()
        while ready[index] == nil { condition.wait() }
        let result = ready.removeValue(forKey: index)!
        condition.unlock()
        return try result.get()
    }

    public func stop() { condition.lock(); stopped = true; condition.broadcast(); condition.unlock() }
    deinit { stop() }
}

public enum TrainingError: Error, CustomStringConvertible {
    case data(String)
    case configuration(String)
    case checkpoint(String)

    public var description: String {
        switch self {
        case let .data(m): "training data: \(m)"
        case let .configuration(m): "training configuration: \(m)"
        case let .checkpoint(m): "checkpoint: \(m)"
        }
    }
}
