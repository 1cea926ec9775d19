import CFFmpeg
import Foundation

/// An analyzer of the normalised timeline: it sees every output frame of the 25 fps timeline, in
/// order, as the scan selects it. Stage 3's scene scorer is one; stage 1 and 2 need none.
///
/// `maxEventLag` says how many frames behind the newest one an analyzer may still decide about
/// (PySceneDetect's `event_buffer_length`); the scan keeps no frames for it, the analyzer keeps
/// what it needs.
public protocol TimelineAnalyzer: AnyObject {
    var maxEventLag: Int { get }
    /// Called once, before the first frame, with the video stream the timeline comes from.
    func begin(video: StreamInfo)
    /// `frame` fills timeline slot `index` (0-based). The frame is only valid during the call.
    func process(_ frame: Frame, index: Int) throws
    func finish(frameCount: Int) throws
    /// The scan ends without `finish` (an error): release what the analyzer holds.
    func abandon()
}

extension TimelineAnalyzer {
    public func begin(video: StreamInfo) {}
    public func abandon() {}
}

/// What one full decode of a source found: stage 1's integrity facts and stage 2's frame map.
public struct ScanReport: Sendable {
    public var formatName: String
    public var streams: [StreamInfo]
    public var videoStream: Int?
    public var audioStream: Int?
    public var videoPackets = 0
    public var videoFrames = 0
    /// Packets or frames the decoder refused, plus frames it flagged as concealed.
    public var videoDecodeErrors = 0
    public var audioPackets = 0
    public var audioFrames = 0
    public var audioDecodeErrors = 0
    /// Decoded audio samples (per channel) at the source rate.
    public var audioSamples = 0
    /// Source-rate sample rate of the audio stream.
    public var audioSampleRate = 0
    /// Timeline time of the first decoded audio sample, in seconds.
    public var audioStartSeconds: Double?
    /// How loud the decoded audio was (stage 1's silence check).
    public var audioLevel = AudioLevelMeter(silenceDBFS: ScanPass.defaultSilenceDBFS)
    /// Set when the container could not be read to its end (truncated or damaged files).
    public var demuxError: String?
    public var frameMap: FrameMap?

    /// Decoded video duration: the timeline length in seconds.
    public var videoSeconds: Double {
        guard let m = frameMap else { return 0 }
        return Double(m.outputFrameCount) * m.outputRate.inverted.seconds
    }
    public var audioSeconds: Double { audioSampleRate > 0 ? Double(audioSamples) / Double(audioSampleRate) : 0 }
}

/// One decode of a whole source, driving every analyzer that needs its frames.
///
/// Rule: a source is decoded once for analysis. Why: decoding dominates stages 1–3 (the reference
/// decodes and re-encodes the full-resolution video three times before it looks at a face). The
/// scan decodes video and audio fully (stage 1's integrity check), selects the 25 fps timeline
/// (stage 2's frame map) and feeds each timeline frame to the `TimelineAnalyzer`s (stage 3).
public struct ScanPass {
    public var outputRate: Rational
    public var decoderThreads: Int
    public var timelineAnalyzers: [any TimelineAnalyzer]
    /// Audio frames quieter than this count as silent in `ScanReport.audioLevel`.
    public var silenceDBFS: Double
    public static let defaultSilenceDBFS = -60.0

    public init(outputRate: Rational = Rational(25, 1), decoderThreads: Int = 0, timelineAnalyzers: [any TimelineAnalyzer] = [],
                silenceDBFS: Double = ScanPass.defaultSilenceDBFS) {
        self.outputRate = outputRate
        self.decoderThreads = decoderThreads
        self.timelineAnalyzers = timelineAnalyzers
        self.silenceDBFS = silenceDBFS
    }

    /// Scans `path`. Throws only when the container cannot be opened at all; damage further in is
    /// counted in the report, because stage 1 decides about it.
    public func run(path: String) throws -> ScanReport {
        let demuxer = try Demuxer(path: path)
        var finished = false
        defer { if !finished { for a in timelineAnalyzers { a.abandon() } } }
        let (videoIndex, audioIndex) = demuxer.pipelineStreams
        var report = ScanReport(formatName: demuxer.formatName, streams: demuxer.streams, videoStream: videoIndex, audioStream: audioIndex)
        report.audioLevel = AudioLevelMeter(silenceDBFS: silenceDBFS)
        let used = [videoIndex, audioIndex].compactMap { $0 }
        demuxer.discardAll(except: Set(used))

        if let videoIndex { for a in timelineAnalyzers { a.begin(video: demuxer.info(videoIndex)) } }
        let video = try videoIndex.map { try VideoTrack(demuxer: demuxer, index: $0, offset: demuxer.timelineOffset(stream: $0, streams: used),
                                                        threads: decoderThreads, outputRate: outputRate, analyzers: timelineAnalyzers) }
        let audioDecoder = try audioIndex.map { try CodecDecoder(stream: demuxer.stream($0), threads: 1) }
        let audioOffset = audioIndex.map { demuxer.timelineOffset(stream: $0, streams: used) } ?? 0
        let audioFrame = try Frame()

        func drainAudio() throws {
            guard let audioDecoder else { return }
            while true {
                let step: Step
                do { step = try audioDecoder.receive(into: audioFrame) } catch { report.audioDecodeErrors += 1; continue }
                guard step == .ok else { return }
                report.audioFrames += 1
                report.audioSamples += audioFrame.sampleCount
                report.audioLevel.add(audioFrame.pointer)
                report.audioSampleRate = Int(audioFrame.pointer.pointee.sample_rate)
                if report.audioStartSeconds == nil, audioFrame.bestEffortTimestamp != cffmpeg_nopts() {
                    report.audioStartSeconds = Double(audioFrame.bestEffortTimestamp + audioOffset) * audioDecoder.timeBase.seconds
                }
                if audioFrame.isCorrupt { report.audioDecodeErrors += 1 }
            }
        }

        let packet = try Packet()
        readLoop: while true {
            do {
                guard try demuxer.read(into: packet) == .ok else { break readLoop }
            } catch {
                report.demuxError = error.description
                break readLoop
            }
            if packet.streamIndex == report.videoStream, let video {
                report.videoPackets += 1
                try video.decode(packet, report: &report)
            } else if packet.streamIndex == report.audioStream, let audioDecoder {
                report.audioPackets += 1
                do {
                    while try audioDecoder.send(packet) == .again { try drainAudio() }
                } catch { report.audioDecodeErrors += 1 }
                try drainAudio()
            }
        }
        if let video {
            try video.decode(nil, report: &report)
            report.frameMap = try video.finish()
        }
        if let audioDecoder {
            _ = try? audioDecoder.send(nil)
            try drainAudio()
        }
        finished = true
        return report
    }
}

/// The video half of a scan: decoder, timestamp shift, fps selection and timeline fan-out.
private final class VideoTrack {
    let decoder: CodecDecoder
    let stream: UnsafeMutablePointer<AVStream>
    let offset: Int64
    var selector: FPSSelector
    let analyzers: [any TimelineAnalyzer]
    let frame: Frame
    var clock: DecodeClock
    /// The frame waiting for the selector's decision (kept only when analyzers need pixels).
    var pending: Frame?
    var pendingIndex = -1
    var sourcePts: [Int64] = []
    var repeats: [UInt32] = []
    var timelineCount = 0
    var last: (pts: Int64, duration: Int64)?

    init(demuxer: Demuxer, index: Int, offset: Int64, threads: Int, outputRate: Rational, analyzers: [any TimelineAnalyzer]) throws {
        stream = demuxer.stream(index)
        decoder = try CodecDecoder(stream: stream, threads: threads)
        clock = DecodeClock(stream: stream, decoder: decoder)
        let tb = Rational(stream.pointee.time_base)
        self.offset = offset
        selector = FPSSelector(inputTimeBase: tb, outputRate: outputRate)
        self.analyzers = analyzers
        frame = try Frame()
    }

    func decode(_ packet: Packet?, report: inout ScanReport) throws {
        if let packet { clock.sent(packet) } else { clock.drainStarts() }
        do {
            while try decoder.send(packet) == .again { try drain(report: &report) }
        } catch is MediaError {
            // A refused packet is damage stage 1 counts; a refused drain request just ends the stream.
            if packet == nil { return }
            report.videoDecodeErrors += 1
        }
        try drain(report: &report)
    }

    private func drain(report: inout ScanReport) throws {
        while true {
            let step: Step
            clock.draining()
            do { step = try decoder.receive(into: frame) } catch { report.videoDecodeErrors += 1; continue }
            guard step == .ok else { return }
            report.videoFrames += 1
            if frame.isCorrupt { report.videoDecodeErrors += 1 }
            let raw = clock.received(frame)
            let pts = raw.map { $0 + offset }
            let index = sourcePts.count
            sourcePts.append(raw ?? cffmpeg_nopts())
            repeats.append(0)
            if let pts { last = (pts, frame.duration) }
            let emissions = selector.push(index: index, pts: pts)
            try apply(emissions)
            if !analyzers.isEmpty {
                pending = try frame.reference()
                pendingIndex = index
            }
        }
    }

    private func apply(_ emissions: [FPSSelector.Emission]) throws {
        for e in emissions {
            repeats[e.sourceIndex] += 1
            if !analyzers.isEmpty {
                precondition(e.sourceIndex == pendingIndex, "the fps selection emits only the oldest buffered frame")
                for a in analyzers { try a.process(pending!, index: timelineCount) }
            }
            timelineCount += 1
        }
    }

    /// Ends the stream as the ffmpeg CLI does and returns the frame map.
    func finish() throws -> FrameMap? {
        guard let last else { return nil }
        let tb = Rational(stream.pointee.time_base)
        let us = Rational(1, 1_000_000)
        // ffmpeg.c: next_pts = pts(last) + duration(last), kept in microseconds, where the duration
        // falls back to the frame rate when the packet carried none; then back to the stream's base.
        var endMicros = rescale(last.pts, from: tb, to: us, rounding: .nearInfinity)
        if last.duration > 0 {
            endMicros += rescale(last.duration, from: tb, to: us, rounding: .nearInfinity)
        } else if let rate = decoder.codecFrameRate ?? nonZero(stream.pointee.avg_frame_rate) {
            endMicros += 1_000_000 * rate.den / rate.num
        }
        let eof = rescale(endMicros, from: us, to: tb)
        try apply(selector.finish(eofPts: eof))
        for a in analyzers { try a.finish(frameCount: timelineCount) }
        return FrameMap(timeBase: tb, timestampOffset: offset, outputRate: selector.outputRate,
                        firstOutputPts: selector.firstOutputPts ?? 0, sourcePts: sourcePts, repeats: repeats)
    }

    private func nonZero(_ r: AVRational) -> Rational? { r.num > 0 && r.den > 0 ? Rational(r) : nil }
}
