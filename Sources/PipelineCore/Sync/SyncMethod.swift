import Foundation

/// What a sync method measures on one aligned clip: the audio/video offset in frames and a confidence.
///
/// Sign convention of SyncNet v2 (`syncnet_python`): a positive offset means the audio **leads** the
/// picture by that many 25 fps frames (the sound of a syllable comes before the lips move), and it
/// is fixed by delaying the audio by the offset.
public struct SyncMeasurement: Codable, Sendable, Equatable {
    public var offset: Int
    /// In the method's own units (see each method); higher is more certain.
    public var confidence: Double
    /// The method's score at each candidate offset, from −search to +search.
    public var scores: [Double]
}

/// A way to measure sync on an aligned clip: its per-frame landmarks (source-frame coordinates)
/// and its 16 kHz mono audio, exactly `frames × 640` samples on the same timeline.
public protocol SyncMethod: Sendable {
    /// Stored with every score; part of the score key, so changing it recomputes the scores.
    var name: String { get }
    /// Hash of everything that changes the measurement (not the decision thresholds).
    var fingerprint: String { get }
    func measure(landmarks: [[Point2]], audio: [Float]) throws -> SyncMeasurement
}

public enum SyncMethodError: Error, CustomStringConvertible, Equatable {
    case tooShort(frames: Int, needed: Int)
    case audioLength(samples: Int, expected: Int)
    case unknownMethod(String)

    public var description: String {
        switch self {
        case let .tooShort(frames, needed): "clip has \(frames) frames; the offset search needs at least \(needed)"
        case let .audioLength(samples, expected): "audio has \(samples) samples, expected \(expected) (640 per frame)"
        case let .unknownMethod(name): "unknown sync method \"\(name)\" (available: correlation)"
        }
    }
}
