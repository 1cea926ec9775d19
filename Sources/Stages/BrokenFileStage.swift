import CFFmpeg
import Foundation
import PipelineCore

/// Stage 1 `broken`: decode every video and audio packet of a source once and reject it, with a
/// reason, when it cannot be a training source.
///
/// Reference: bytedance/LatentSync@a229c39 preprocess/remove_broken_videos.py — it only opens the
/// container (decord) and *deletes* the file on failure. We decode everything, never touch the
/// input, and record why. The same decode is the scan pass: it also records stage 2's frame map
/// (and stage 3's scores once that stage exists), so no later stage decodes for analysis.
///
/// Rejected when: the file is empty or not a media container; there is no video or no audio
/// stream; nothing decodes; damaged packets exceed `broken.max_decode_error_rate`; the container
/// breaks off before its end; the playable duration is below `broken.min_duration_seconds`.
public struct BrokenFileStage: Stage {
    public let stageID = StageID.broken
    public let unit = WorkUnit.source
    public let configuration: PipelineConfiguration.Broken
    /// The timeline rate the scan selects frames for (stage 2's setting).
    public let timelineRate: Rational
    /// Stage 3's scoring setting (its decision settings are stage 3's own).
    public let sceneDownscale: Int?

    public init(configuration: PipelineConfiguration) {
        self.configuration = configuration.broken
        self.timelineRate = Rational(Int64(configuration.normalize.fps), 1)
        self.sceneDownscale = configuration.scenes.downscale == 0 ? nil : configuration.scenes.downscale
    }

    /// Everything the scan measures is part of it: a changed rate or scoring setting rescans.
    public var fingerprint: String {
        Fingerprint.of("v1", Fingerprint.canonicalJSON(configuration), FrameMapAnalysis.fingerprint(rate: timelineRate),
                       ContentScoresAnalysis.fingerprint(downscale: sceneDownscale))
    }

    struct Metrics: Codable {
        var format: String
        var streams: [StreamInfo]
        var videoPackets: Int, videoFrames: Int, videoDecodeErrors: Int
        var audioPackets: Int, audioFrames: Int, audioDecodeErrors: Int
        var decodeErrorRate: Double
        var videoSeconds: Double, audioSeconds: Double
        var demuxError: String?
        /// Share of the audio in frames below `broken.silence_dbfs`, and the peak (nil: all zeros).
        var audioSilentShare: Double?
        var audioPeakDBFS: Double?
    }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        // Found by discovery: a name the dataset cannot carry, a dangling link, a file that cannot
        // be opened. Decided once, with the reason, instead of failing on every run.
        if let problem = item.source.problem { return .rejected(problem) }
        if item.source.size == 0 { return .rejected("empty file (0 bytes)") }
        let report: ScanReport
        let scorer = ContentScorer(downscale: sceneDownscale)
        do {
            // With cores to spare (fewer jobs than cores), scoring overlaps decoding on its own thread.
            let analyzer: any TimelineAnalyzer = context.decoderThreads > 1 ? BackgroundAnalyzer(scorer) : scorer
            report = try ScanPass(outputRate: timelineRate, decoderThreads: context.decoderThreads, timelineAnalyzers: [analyzer],
                                  silenceDBFS: configuration.silenceDBFS).run(path: item.sourcePath)
        } catch let MediaError.ffmpeg(function, code, message) where function.hasPrefix("avformat_open_input") || function.hasPrefix("avformat_find_stream_info") {
            // Permission or I/O problems are failures (retried); unreadable content is a rejection.
            if code == -EACCES || code == -ENOENT || code == -EIO { throw MediaError.ffmpeg(function: function, code: code, message: message) }
            return .rejected("not a readable media container (FFmpeg: \(message))")
        }
        let packets = report.videoPackets + report.audioPackets
        let errors = report.videoDecodeErrors + report.audioDecodeErrors
        let rate = packets > 0 ? Double(errors) / Double(packets) : 1
        let metrics = metricsJSON(Metrics(format: report.formatName, streams: report.streams,
                                          videoPackets: report.videoPackets, videoFrames: report.videoFrames, videoDecodeErrors: report.videoDecodeErrors,
                                          audioPackets: report.audioPackets, audioFrames: report.audioFrames, audioDecodeErrors: report.audioDecodeErrors,
                                          decodeErrorRate: rate, videoSeconds: report.videoSeconds, audioSeconds: report.audioSeconds,
                                          demuxError: report.demuxError, audioSilentShare: report.audioLevel.silentShare,
                                          audioPeakDBFS: report.audioLevel.peak > 0 ? report.audioLevel.peakDBFS : nil))
        let duration = min(report.videoSeconds, report.audioSeconds)
        let handOn = HandOn(analyses: (report.frameMap.map { [FrameMapAnalysis.record($0, rate: timelineRate)] } ?? [])
                                + [ContentScoresAnalysis.record(scorer.scores, downscale: sceneDownscale)],
                            sourceUpdate: SourceUpdate(probe: metricsJSON(report.streams), durationSeconds: duration))
        func reject(_ reason: String) -> StageOutcome { .rejected(reason: reason, metrics: metrics, handOn: handOn) }

        let kinds = report.streams.map { "\($0.kind.rawValue) \($0.codec)" }.joined(separator: ", ")
        guard report.videoStream != nil else { return reject("no video stream (streams: \(kinds.isEmpty ? "none" : kinds))") }
        guard report.audioStream != nil else { return reject("no audio stream (a lip-sync source needs speech; streams: \(kinds))") }
        guard report.videoFrames > 0 else { return reject("no decodable video frame (\(report.videoPackets) packets, \(report.videoDecodeErrors) decode errors)") }
        guard report.audioFrames > 0 else { return reject("no decodable audio (\(report.audioPackets) packets, \(report.audioDecodeErrors) decode errors)") }
        if let demuxError = report.demuxError {
            return reject("container breaks off after \(report.videoFrames) video frames: \(demuxError) (truncated or damaged file)")
        }
        // A file cut short (an interrupted copy or upload) still opens when its index comes first.
        if let declared = report.streams.first(where: { $0.index == report.videoStream })?.declaredDuration,
           report.videoSeconds < declared * 0.9, declared - report.videoSeconds > 0.5 {
            return reject(String(format: "truncated: the video decodes to %.2f s of the %.2f s its container declares (incomplete copy or download?)",
                                 report.videoSeconds, declared))
        }
        if rate > configuration.maxDecodeErrorRate {
            return reject(String(format: "decode error rate %.1f%% above the %.1f%% limit (%d of %d packets damaged)",
                                 rate * 100, configuration.maxDecodeErrorRate * 100, errors, packets))
        }
        if report.audioLevel.silentShare > configuration.maxSilentShare {
            let peak = report.audioLevel.peak > 0 ? String(format: "%.1f dBFS", report.audioLevel.peakDBFS) : "every sample is 0: digital silence"
            return reject(String(format: "silent audio: %.0f%% of its %.1f s is below %.0f dBFS (peak %@); a lip-sync source needs audible speech",
                                 report.audioLevel.silentShare * 100, report.audioSeconds, configuration.silenceDBFS, peak))
        }
        if duration < configuration.minDurationSeconds {
            return reject(String(format: "too short: %.2f s playable (video %.2f s, audio %.2f s), minimum %.2f s",
                                 duration, report.videoSeconds, report.audioSeconds, configuration.minDurationSeconds))
        }
        return .done(metrics: metrics, artifact: nil, handOn: handOn)
    }
}

/// The stored form of stage 3's per-frame content scores (an `analysis` row of kind "contentScores").
public enum ContentScoresAnalysis {
    public static let kind = "contentScores"
    public static func fingerprint(downscale: Int?) -> String { ContentScorer.fingerprint(downscale: downscale) }
    public static func record(_ scores: ContentScores, downscale: Int?) -> AnalysisRecord {
        AnalysisRecord(sourceId: 0, kind: kind, fingerprint: fingerprint(downscale: downscale), data: scores.serialized())
    }
    public static func load(sourceId: Int64, downscale: Int?, from store: any Ledger) throws -> ContentScores? {
        guard let row = try store.analysis(sourceId: sourceId, kind: kind), row.fingerprint == fingerprint(downscale: downscale) else { return nil }
        return try ContentScores(serialized: row.data)
    }
}

/// The stored form of stage 2's frame map (an `analysis` row of kind "frameMap").
public enum FrameMapAnalysis {
    public static let kind = "frameMap"
    public static func fingerprint(rate: Rational) -> String { Fingerprint.of(kind, "v1", rate.description) }
    public static func record(_ map: FrameMap, rate: Rational) -> AnalysisRecord {
        AnalysisRecord(sourceId: 0, kind: kind, fingerprint: fingerprint(rate: rate), data: map.serialized())
    }
    /// Loads the frame map a scan stored for `sourceId` at `rate`, or nil.
    public static func load(sourceId: Int64, rate: Rational, from store: any Ledger) throws -> FrameMap? {
        guard let row = try store.analysis(sourceId: sourceId, kind: kind), row.fingerprint == fingerprint(rate: rate) else { return nil }
        return try FrameMap(serialized: row.data)
    }
}
