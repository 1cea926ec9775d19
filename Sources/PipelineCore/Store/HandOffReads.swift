import Foundation

/// A published clip with where it came from and the scores it was kept on.
public struct PublishedPiece: Sendable, Equatable {
    public var source: String
    public var clip: ClipRecord
    public var piece: AlignedPieceRecord
    public var publication: PublishedClipRecord
    /// Confidence the current sync result measured (nil for pieces it could not measure).
    public var syncConfidence: Double?
    /// Score the current quality result measured.
    public var quality: Double?
}

/// Every measured piece of the current sync and quality results of present sources (kept or not),
/// and how many clips are published: what the report plots.
public struct CurrentScores: Sendable, Equatable {
    public var offsets: [Int] = []
    public var confidences: [Double] = []
    public var qualities: [Double] = []
    public var published = 0
    public init() {}
}
