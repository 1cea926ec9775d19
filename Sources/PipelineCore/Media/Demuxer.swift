import CFFmpeg
import CFFmpegLog

/// What a container says about one of its streams (stored as stage 1's metadata).
public struct StreamInfo: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case video, audio, other }
    public var index: Int
    public var kind: Kind
    public var codec: String
    public var timeBase: Rational
    /// Duration in seconds as the container declares it (nil when it does not).
    public var declaredDuration: Double?
    // video
    public var width: Int?
    public var height: Int?
    public var averageFrameRate: Rational?
    public var rotationDegrees: Int?
    // audio
    public var sampleRate: Int?
    public var channels: Int?
}

/// An open input container (`AVFormatContext`), read packet by packet.
public final class Demuxer {
    public let path: String
    public let context: UnsafeMutablePointer<AVFormatContext>

    /// Opens `path` and reads enough of it to know its streams.
    public init(path: String) throws(MediaError) {
        self.path = path
        _ = installFFmpegLogCapture
        cffmpeg_clear_last_error()
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        try ff("avformat_open_input(\(path))", avformat_open_input(&ctx, path, nil, nil))
        guard let ctx else { throw .allocation("AVFormatContext") }
        context = ctx
        do {
            try ff("avformat_find_stream_info(\(path))", avformat_find_stream_info(ctx, nil))
        } catch {
            var c: UnsafeMutablePointer<AVFormatContext>? = ctx
            avformat_close_input(&c)
            throw error
        }
    }

    deinit {
        var c: UnsafeMutablePointer<AVFormatContext>? = context
        avformat_close_input(&c)
    }

    public var formatName: String { String(cString: context.pointee.iformat.pointee.name) }
    public var streamCount: Int { Int(context.pointee.nb_streams) }
    public func stream(_ index: Int) -> UnsafeMutablePointer<AVStream> { context.pointee.streams[index]! }

    /// The container's start time in microseconds (FFmpeg's `AV_TIME_BASE`), 0 when unknown.
    public var startTimeMicroseconds: Int64 {
        let t = context.pointee.start_time
        return t == cffmpeg_nopts() ? 0 : t
    }

    /// The instant (microseconds) that becomes time zero of the normalised timeline, given the streams
    /// a reader uses: what the ffmpeg CLI subtracts from every timestamp (`-start_time` shift).
    ///
    /// For formats with timestamp discontinuities (MPEG-TS/PS), the CLI corrects the container's start
    /// time to the earliest start among the streams it actually reads (ffmpeg.c, "Correcting
    /// starttime based on the enabled streams"); the pipeline reads the best video and audio streams.
    public func timelineOriginMicroseconds(streams used: [Int]) -> Int64 {
        let start = startTimeMicroseconds
        guard (context.pointee.iformat.pointee.flags & AVFMT_TS_DISCONT) != 0, context.pointee.start_time != cffmpeg_nopts() else { return start }
        var earliest = Int64.max
        for index in used {
            let st = stream(index)
            guard st.pointee.start_time != cffmpeg_nopts() else { continue }
            earliest = min(earliest, rescale(st.pointee.start_time, from: Rational(st.pointee.time_base), to: Rational(1, 1_000_000)))
        }
        return earliest != .max && earliest > start ? earliest : start
    }

    /// The offset (in `index`'s time base) that places that stream's timestamps on the timeline.
    public func timelineOffset(stream index: Int, streams used: [Int]) -> Int64 {
        av_rescale_q(-timelineOriginMicroseconds(streams: used), cffmpeg_time_base_q(), stream(index).pointee.time_base)
    }

    /// The best video and audio streams (cover art is not video): the streams the pipeline reads.
    public var pipelineStreams: (video: Int?, audio: Int?) {
        var video = bestStream(AVMEDIA_TYPE_VIDEO)
        if let v = video, (stream(v).pointee.disposition & AV_DISPOSITION_ATTACHED_PIC) != 0 { video = nil }
        return (video, bestStream(AVMEDIA_TYPE_AUDIO))
    }

    /// The stream FFmpeg would pick for `type`, or nil.
    public func bestStream(_ type: AVMediaType) -> Int? {
        let index = av_find_best_stream(context, type, -1, -1, nil, 0)
        return index >= 0 ? Int(index) : nil
    }

    /// Metadata of every stream.
    public var streams: [StreamInfo] { (0..<streamCount).map(info) }

    public func info(_ index: Int) -> StreamInfo {
        let st = stream(index)
        let par = st.pointee.codecpar.pointee
        let kind: StreamInfo.Kind = switch par.codec_type {
        case AVMEDIA_TYPE_VIDEO: .video
        case AVMEDIA_TYPE_AUDIO: .audio
        default: .other
        }
        let tb = Rational(st.pointee.time_base)
        var info = StreamInfo(index: index, kind: kind, codec: String(cString: avcodec_get_name(par.codec_id)), timeBase: tb)
        if st.pointee.duration != cffmpeg_nopts(), st.pointee.duration > 0 {
            info.declaredDuration = Double(st.pointee.duration) * tb.seconds
        }
        switch kind {
        case .video:
            info.width = Int(par.width)
            info.height = Int(par.height)
            if st.pointee.avg_frame_rate.den != 0, st.pointee.avg_frame_rate.num != 0 {
                info.averageFrameRate = Rational(st.pointee.avg_frame_rate)
            }
            if let side = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, nil) {
                let degrees = side.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_get($0) }
                if degrees.isFinite {
                    // av_display_rotation_get is counter-clockwise; players rotate clockwise by -degrees.
                    var clockwise = Int((-degrees).rounded()) % 360
                    if clockwise < 0 { clockwise += 360 }
                    info.rotationDegrees = clockwise
                }
            }
        case .audio:
            info.sampleRate = Int(par.sample_rate)
            info.channels = Int(par.ch_layout.nb_channels)
        case .other:
            break
        }
        return info
    }

    /// Tells the demuxer to skip every stream not in `keep` (saves parsing work).
    public func discardAll(except keep: Set<Int>) {
        for i in 0..<streamCount {
            stream(i).pointee.discard = keep.contains(i) ? AVDISCARD_DEFAULT : AVDISCARD_ALL
        }
    }

    /// Reads the next packet into `packet`: `.ok`, or `.endOfStream`. A damaged container throws.
    public func read(into packet: Packet) throws(MediaError) -> Step {
        packet.unref()
        while true {
            let step = try ffStep("av_read_frame(\(path))", av_read_frame(context, packet.pointer))
            if step != .again { return step }
        }
    }

    /// Seeks so that the next packets of `stream` start at or before `timestamp` (stream time base).
    /// Returns false, with the demuxer where it was, when the container refuses every way to get
    /// there: the caller then reads forward from where it is.
    ///
    /// Why not just `av_seek_frame`: AVI refuses a target before its first index entry
    /// (`EPERM`) and some demuxers refuse a backward seek to a timestamp they do not index; a clip
    /// starting in the first second of such a file must not fail because of that. The target is
    /// first clamped to the stream's start, then tried with the generic `avformat_seek_file`
    /// (any keyframe at or before the target).
    public func seek(stream index: Int, to timestamp: Int64) -> Bool {
        let st = stream(index)
        var target = timestamp
        if st.pointee.start_time != cffmpeg_nopts() { target = max(target, st.pointee.start_time) }
        if av_seek_frame(context, Int32(index), target, AVSEEK_FLAG_BACKWARD) >= 0 { return true }
        return avformat_seek_file(context, Int32(index), Int64.min, target, target, 0) >= 0
    }
}
