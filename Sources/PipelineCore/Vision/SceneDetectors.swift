/// Decides scene cuts from per-frame content scores, one frame at a time.
///
/// Reference: Breakthrough/PySceneDetect@v0.6.1-release scenedetect/detectors/content_detector.py
/// and adaptive_detector.py. Scoring (`ContentScorer`) and deciding are separate, so a changed
/// threshold re-decides from stored scores without decoding. `maxEventLag` is how many frames
/// behind the newest pushed frame a reported cut may lie (PySceneDetect's `event_buffer_length`).
public protocol CutDetector {
    var maxEventLag: Int { get }
    /// Pushes frame `frame`'s score; returns the cuts decided now (possibly for earlier frames).
    mutating func push(frame: Int, score: Double) -> [Int]
    /// Ends the stream; returns any cuts still pending.
    mutating func finish() -> [Int]
}

/// `ContentDetector`: a cut where the score reaches `threshold`, at least `minSceneLength` frames
/// after the previous cut (or the first frame).
public struct ContentCutDetector: CutDetector {
    public let threshold: Double
    public let minSceneLength: Int
    public let maxEventLag = 0
    private var lastCut: Int?

    public init(threshold: Double = 27, minSceneLength: Int = 15) {
        self.threshold = threshold
        self.minSceneLength = minSceneLength
    }

    public mutating func push(frame: Int, score: Double) -> [Int] {
        if lastCut == nil { lastCut = frame }
        guard score >= threshold, frame - lastCut! >= minSceneLength else { return [] }
        lastCut = frame
        return [frame]
    }

    public mutating func finish() -> [Int] { [] }
}

/// `AdaptiveDetector`: a cut at frame t where its score, relative to the mean score of the
/// `windowWidth` frames on each side, reaches `adaptiveThreshold`, the score itself reaches
/// `minContentValue`, and (unlike `ContentDetector`, except for the first cut) at least
/// `minSceneLength` frames have passed since the previous cut. Decides `windowWidth` frames late.
public struct AdaptiveCutDetector: CutDetector {
    public let adaptiveThreshold: Double
    public let windowWidth: Int
    public let minContentValue: Double
    public let minSceneLength: Int
    public var maxEventLag: Int { windowWidth }
    /// The ratio computed for each frame that had a full window (frame → ratio), for inspection.
    public private(set) var ratios: [Int: Double] = [:]
    private var window: [(frame: Int, score: Double)] = []
    private var lastCut: Int?

    public init(adaptiveThreshold: Double = 2, windowWidth: Int = 2, minContentValue: Double = 15, minSceneLength: Int = 15) {
        precondition(windowWidth >= 1, "window width must be at least 1")
        self.adaptiveThreshold = adaptiveThreshold
        self.windowWidth = windowWidth
        self.minContentValue = minContentValue
        self.minSceneLength = minSceneLength
    }

    public mutating func push(frame: Int, score: Double) -> [Int] {
        window.append((frame, score))
        guard window.count == 2 * windowWidth + 1 else { return [] }
        defer { window.removeFirst() }
        let centre = window[windowWidth]
        let neighbours = window.enumerated().filter { $0.offset != windowWidth }.map(\.element.score)
        let average = neighbours.reduce(0, +) / Double(neighbours.count)
        let ratio: Double
        if abs(average) >= 1e-5 {
            ratio = min(centre.score / average, 255)
        } else {
            ratio = centre.score >= minContentValue ? 255 : 0
        }
        ratios[centre.frame] = ratio
        guard ratio >= adaptiveThreshold, centre.score >= minContentValue,
              lastCut.map({ centre.frame - $0 >= minSceneLength }) ?? true else { return [] }
        lastCut = centre.frame
        return [centre.frame]
    }

    public mutating func finish() -> [Int] { [] }
}

extension CutDetector {
    /// Runs the detector over stored scores and returns every cut, in order.
    public mutating func cuts(_ scores: ContentScores, weights: ContentWeights) -> [Int] {
        var cuts: [Int] = []
        for i in 0..<scores.count { cuts += push(frame: i, score: scores.score(i, weights: weights)) }
        return cuts + finish()
    }
}

/// Scenes `[start, end)` covering `0..<frameCount`, split at `cuts` (one scene when there is no
/// cut: PySceneDetect's `start_in_scene`).
///
/// Unlike PySceneDetect 0.6.1, whose last scene ends at the *position* of the last frame and so
/// drops it, the last scene ends at `frameCount`: the final frame belongs to the last scene.
public func scenes(cuts: [Int], frameCount: Int) -> [Range<Int>] {
    guard frameCount > 0 else { return [] }
    let bounds = [0] + cuts.filter { $0 > 0 && $0 < frameCount } + [frameCount]
    return zip(bounds, bounds.dropFirst()).map { $0..<$1 }
}
