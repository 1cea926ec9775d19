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

    public init(offset: Int, confidence: Double, scores: [Double]) {
        self.offset = offset; self.confidence = confidence; self.scores = scores
    }
}

/// One aligned piece as a sync method sees it.
public struct SyncClip: Sendable {
    /// Per frame, the 68 landmarks in source-frame coordinates.
    public var landmarks: [[Point2]]
    /// Per frame, the alignment (source → crop) that stage 5 applied.
    public var matrices: [AffineMatrix]
    /// The aligned clip's side (256 or 512).
    public var resolution: Int
    /// 16 kHz mono, exactly `frames × 640` samples on the clip's timeline.
    public var audio: [Float]
    /// The aligned clip (H.264, R×R, 25 fps) for methods that look at pixels.
    public var video: String

    public init(landmarks: [[Point2]], matrices: [AffineMatrix], resolution: Int, audio: [Float], video: String) {
        self.landmarks = landmarks; self.matrices = matrices; self.resolution = resolution; self.audio = audio; self.video = video
    }

    public var frameCount: Int { landmarks.count }

    /// The landmarks in the aligned clip's pixel coordinates.
    public func alignedLandmarks() -> [[Point2]] {
        let template = AlignmentTemplate(resolution: resolution)
        return zip(landmarks, matrices).map { points, m in points.map { template.toOutput(m.apply($0)) } }
    }
}

/// A way to measure sync on an aligned clip.
public protocol SyncMethod: Sendable {
    /// Stored with every score; part of the score key, so changing it recomputes the scores.
    var name: String { get }
    /// Hash of everything that changes the measurement (not the decision thresholds).
    var fingerprint: String { get }
    func measure(_ clip: SyncClip) throws -> SyncMeasurement
}

public enum SyncMethodError: Error, CustomStringConvertible, Equatable {
    case tooShort(frames: Int, needed: Int)
    case audioLength(samples: Int, expected: Int)
    case unknownMethod(String)

    public var description: String {
        switch self {
        case let .tooShort(frames, needed): "clip has \(frames) frames; the offset search needs at least \(needed)"
        case let .audioLength(samples, expected): "audio has \(samples) samples, expected \(expected) (640 per frame)"
        case let .unknownMethod(name): "unknown sync method \"\(name)\" (available: correlation, syncnet_v2, stable_syncnet)"
        }
    }
}
