import Foundation
import PipelineCore

/// `pipelined calibrate sync`: the sync threshold for *this* footage, found with negative controls.
///
/// Every aligned piece that reached stage 6 is scored twice by the configured method: against its
/// own audio (a matched pair) and against audio of the same length cut from a piece of a different
/// source (a mismatched pair: it cannot be in sync). A mismatched pair the stage would keep is a
/// false accept; the threshold is the lowest confidence that keeps at most `falseAcceptRate` of the
/// mismatched pairs, and the share of matched pairs it keeps says what it costs. No ground truth is
/// needed, and it works the same for every method.
///
/// Why: a fixed threshold carries the fixtures it was tuned on. On real dialogue the weight-free
/// method's confidences fell below its synthetic-data threshold and the whole set was rejected;
/// mismatched audio measures the chance level of the footage at hand.
public struct SyncCalibration: Codable, Sendable, Equatable {
    /// One scored pair: the piece's aligned video, where its audio came from, the measurement.
    public struct Pair: Codable, Sendable, Equatable {
        public var video: String
        /// The aligned piece whose frames' audio was used (the same piece for matched pairs).
        public var audioFrom: String
        public var offset: Int
        public var confidence: Double
    }

    public var method: String
    /// The configuration key the threshold belongs to (`[sync] <key>`).
    public var key: String
    public var falseAcceptRate: Double
    public var maxOffset: Int
    public var seed: UInt64
    public var matched: [Pair]
    public var mismatched: [Pair]
    /// Keep when confidence ≥ threshold (and |offset| ≤ max_offset).
    public var threshold: Double
    /// Shares of mismatched and matched pairs the threshold keeps.
    public var falseAccepts: Double
    public var matchedKept: Double
    public var createdAt: Date
    /// Donor audio left out because it carries the clip's own speech (nil in files from before).
    public var sameSpeechSkipped: Int?

    /// Where the latest calibration is kept (read by `pipelined report`).
    public static func file(in outputDirectory: URL) -> URL {
        outputDirectory.appendingPathComponent("calibration").appendingPathComponent("sync.json")
    }

    /// The configuration key of `method`'s threshold.
    public static func key(method: String) -> String {
        switch method {
        case "syncnet_v2": "syncnet_v2_min_confidence"
        case "stable_syncnet": "stable_syncnet_min_confidence"
        default: "min_confidence"
        }
    }

    /// The lowest threshold that keeps at most `falseAcceptRate` of `mismatched` (a pair is kept
    /// when its confidence reaches the threshold and |offset| ≤ `maxOffset`), with the shares of
    /// mismatched and matched pairs it keeps.
    public static func threshold(matched: [Pair], mismatched: [Pair], falseAcceptRate: Double, maxOffset: Int)
        -> (threshold: Double, falseAccepts: Double, matchedKept: Double) {
        // Only mismatched pairs inside the offset window can be accepted; the highest `allowed` of
        // them may be, the next one must not.
        let candidates = mismatched.filter { abs($0.offset) <= maxOffset }.map(\.confidence).sorted(by: >)
        let allowed = Int((falseAcceptRate * Double(mismatched.count)).rounded(.down))
        let threshold: Double
        if allowed >= candidates.count {
            // Every mismatched pair may pass: the lowest confidence seen anywhere keeps them all.
            threshold = (matched.map(\.confidence) + mismatched.map(\.confidence)).min() ?? 0
        } else {
            threshold = decimalAbove(candidates[allowed])
        }
        func kept(_ pairs: [Pair]) -> Double {
            pairs.isEmpty ? 0 : Double(pairs.filter { $0.confidence >= threshold && abs($0.offset) <= maxOffset }.count) / Double(pairs.count)
        }
        return (threshold, kept(mismatched), kept(matched))
    }

    /// The nearest 6-significant-digit decimal strictly above `v`: a value a configuration file
    /// holds exactly (it reads back as this very double), so the threshold written is the one computed.
    static func decimalAbove(_ v: Double) -> Double {
        func sixDigits(_ x: Double) -> Double { Double(String(format: "%.5e", x))! }
        var c = sixDigits(v)
        if c <= v {
            let exponent = c == 0 ? floor(log10(max(abs(v), 1e-300))) : floor(log10(abs(c)))
            c = sixDigits(c + pow(10, exponent - 5))
        }
        return c > v ? c : v.nextUp
    }

    /// A piece that reached stage 6, with what is needed to score it.
    struct Piece {
        var source: SourceRecord
        var frames: Range<Int>
        var video: String
        var landmarks: AlignedLandmarks
    }

    /// Scores up to `samples` pieces (a seeded random choice when there are more) against their own
    /// audio and against `mismatchedPerPiece` pieces of other sources.
    public static func run(store: any Ledger, configuration: PipelineConfiguration, inputDirectory: URL, outputDirectory: URL,
                           samples: Int, falseAcceptRate: Double, mismatchedPerPiece: Int = 3, seed: UInt64,
                           progress: (String) -> Void = { _ in }) throws -> SyncCalibration {
        var pieces: [Piece] = []
        for (source, p) in try store.currentAlignedPieces() {
            let url = outputDirectory.appendingPathComponent(p.landmarks)
            guard let data = try? Data(contentsOf: url) else {
                throw CalibrationError("\(url.path) is missing: run `pipelined run` again (it rebuilds missing aligned clips) before calibrating")
            }
            let landmarks = try AlignedLandmarks(serialized: data)
            guard landmarks.landmarks.count == p.frames.count else {
                throw CalibrationError("\(p.landmarks) has \(landmarks.landmarks.count) frames, expected \(p.frames.count); run `pipelined run` again")
            }
            pieces.append(Piece(source: source, frames: p.frames, video: p.video, landmarks: landmarks))
        }
        let otherSources = Set(pieces.map(\.source.id)).count
        guard otherSources >= 2 else {
            throw CalibrationError("calibration needs aligned pieces from at least two sources (mismatched pairs take audio from another source); found \(pieces.count) piece(s) from \(otherSources) source(s)")
        }

        var random = SplitMix64(seed: seed)
        var chosen = pieces
        if chosen.count > samples {
            chosen.shuffle(using: &random)
            chosen = Array(chosen.prefix(samples)).sorted { $0.video < $1.video }
        }
        let method = try SyncStage.method(configuration.sync, device: configuration.inference.device)
        let rate = Rational(Int64(configuration.normalize.fps), 1)
        var readers: [Int64: NormalizedReader] = [:]
        func audio(of piece: Piece, frames count: Int) throws -> [Float] {
            let id = piece.source.id!
            if readers[id] == nil {
                guard let map = try FrameMapAnalysis.load(sourceId: id, rate: rate, from: store) else {
                    throw CalibrationError("\(piece.source.relativePath) has no frame map; run `pipelined run` first")
                }
                readers[id] = NormalizedReader(path: inputDirectory.appendingPathComponent(piece.source.relativePath).path, frameMap: map,
                                               sampleRate: configuration.normalize.sampleRate, decoderThreads: 1)
            }
            return try readers[id]!.audioSamples(frames: piece.frames.lowerBound..<(piece.frames.lowerBound + count))
        }
        func measure(_ piece: Piece, audioFrom other: Piece, samples: [Float]) throws -> Pair? {
            let clip = SyncClip(landmarks: piece.landmarks.landmarks, matrices: piece.landmarks.matrices, resolution: piece.landmarks.resolution,
                                audio: samples,
                                video: outputDirectory.appendingPathComponent(piece.video).path)
            // A piece the method cannot measure (too short for its windows) is left out of both sets.
            guard let m = try? method.measure(clip) else { return nil }
            return Pair(video: piece.video, audioFrom: other.video, offset: m.offset, confidence: m.confidence)
        }

        var matched: [Pair] = [], mismatched: [Pair] = []
        var skipped = 0
        for (n, piece) in chosen.enumerated() {
            // Each piece's audio is read once: for its own score, the same-speech check and its donors'.
            let ownAudio = try audio(of: piece, frames: piece.frames.count)
            guard let own = try measure(piece, audioFrom: piece, samples: ownAudio) else { continue }
            matched.append(own)
            // Audio donors: pieces of other sources at least as long, from distinct sources where possible.
            var donors = pieces.filter { $0.source.id != piece.source.id && $0.frames.count >= piece.frames.count }
            donors.shuffle(using: &random)
            // Another source with the same speech (a copy, a re-upload, a dub of the same track) is
            // not a negative control: its audio can be in sync with this mouth (checked in `pick`).
            // Donor audio is read once, only for donors actually considered.
            var usedSources = Set<Int64>(), considered = Set<String>()
            var picked: [(piece: Piece, samples: [Float])] = []
            func pick(_ d: Piece) throws {
                guard considered.insert(d.video).inserted else { return }
                let samples = try audio(of: d, frames: piece.frames.count)
                if try CorrelationSync.sameSpeech(ownAudio, samples) { skipped += 1 } else { picked.append((d, samples)) }
            }
            for d in donors where picked.count < mismatchedPerPiece && usedSources.insert(d.source.id!).inserted { try pick(d) }
            for d in donors where picked.count < mismatchedPerPiece { try pick(d) }
            for d in picked { if let pair = try measure(piece, audioFrom: d.piece, samples: d.samples) { mismatched.append(pair) } }
            progress("\(n + 1)/\(chosen.count) \(piece.video)")
        }
        guard !matched.isEmpty, !mismatched.isEmpty else {
            throw CalibrationError("no mismatched pair could be formed: every other source's pieces are shorter than the pieces to score"
                                   + (skipped > 0 ? ", or carry the same speech (\(skipped) left out)" : ""))
        }
        let t = threshold(matched: matched, mismatched: mismatched, falseAcceptRate: falseAcceptRate, maxOffset: configuration.sync.maxOffset)
        return SyncCalibration(method: method.name, key: key(method: configuration.sync.method), falseAcceptRate: falseAcceptRate,
                               maxOffset: configuration.sync.maxOffset, seed: seed, matched: matched, mismatched: mismatched,
                               threshold: t.threshold, falseAccepts: t.falseAccepts, matchedKept: t.matchedKept, createdAt: Date(),
                               sameSpeechSkipped: skipped)
    }

    public func save(in outputDirectory: URL) throws {
        let url = Self.file(in: outputDirectory)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// The latest calibration written to `outputDirectory`, or nil.
    public static func load(from outputDirectory: URL) throws -> SyncCalibration? {
        let url = file(in: outputDirectory)
        guard let data = try? Data(contentsOf: url) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(SyncCalibration.self, from: data)
    }
}

public struct CalibrationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
