import Foundation
import PipelineCore

/// The curated dataset's index files, rebuilt from the database after every run:
///
/// - `fileslist.txt`: one absolute path of a published clip per line, the list LatentSync's
///   trainers read (`data.train_fileslist`).
/// - `manifest.jsonl`: one JSON object per published clip: where it came from (source, scene,
///   segment, frame range), its offset and sync confidence, its quality score, its face size.
///
/// Both are written to a temporary and renamed into place, so a reader (or a crash) sees the
/// previous complete version or the new one. Clips of sources that left the input directory leave
/// the index; their files stay until `run --prune` (`Engine.collectOutputs`) removes them.
public enum DatasetIndex {
    public static let fileslist = "fileslist.txt"
    public static let manifest = "manifest.jsonl"

    public struct Entry: Codable, Sendable, Equatable {
        public var video: String
        public var landmarks: String
        public var source: String
        /// Numbered as in the file names and `status`: scenes from 1 (PySceneDetect's numbering),
        /// segments within a scene from 0.
        public var scene: Int
        public var segment: Int
        public var frames: [Int]
        public var seconds: Double
        public var offset: Int
        public var syncConfidence: Double?
        public var syncMethod: String
        public var quality: Double?
        public var qualityMethod: String
        public var faceSize: Double?

        enum CodingKeys: String, CodingKey {
            case video, landmarks, source, scene, segment, frames, seconds, offset
            case syncConfidence = "sync_confidence", syncMethod = "sync_method", quality, qualityMethod = "quality_method", faceSize = "face_size_px"
        }
    }

    /// The published clips of sources still present, in source, scene, segment order.
    public static func entries(store: any Ledger, configuration: PipelineConfiguration, outputDirectory: URL) throws -> [Entry] {
        let fps = Double(configuration.normalize.fps)
        return try store.publishedPieces().map { p in
            Entry(video: outputDirectory.appendingPathComponent(p.publication.path).path,
                  landmarks: outputDirectory.appendingPathComponent(p.piece.landmarks).path,
                  source: p.source, scene: p.clip.sceneIndex + 1, segment: p.clip.segmentIndex,
                  frames: [p.piece.startFrame, p.piece.endFrame], seconds: Double(p.piece.frames.count) / fps,
                  offset: p.publication.offset, syncConfidence: p.syncConfidence, syncMethod: configuration.sync.method,
                  quality: p.quality, qualityMethod: configuration.quality.method, faceSize: p.publication.faceSize)
        }
    }

    /// Rewrites `fileslist.txt` and `manifest.jsonl` in `outputDirectory`; returns the clip count.
    @discardableResult
    public static func write(store: any Ledger, configuration: PipelineConfiguration, outputDirectory: URL) throws -> Int {
        let entries = try entries(store: store, configuration: configuration, outputDirectory: outputDirectory)
        let outputs = OutputFiles(root: outputDirectory)
        try outputs.publish(fileslist) { try Data(fileslistText(entries).utf8).write(to: URL(fileURLWithPath: $0)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let lines = try entries.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined()
        try outputs.publish(manifest) { try Data(lines.utf8).write(to: URL(fileURLWithPath: $0)) }
        return entries.count
    }

    public static func fileslistText(_ entries: [Entry]) -> String { entries.map { $0.video + "\n" }.joined() }
}
