import CFFmpeg

/// Writes an MP4 of H.264 (yuv420p, constant frame rate) and AAC (mono) from timeline frames and
/// float samples: what `resampled/`, `aligned/` and `high_visual_quality/` files are made of.
///
/// H.264 in yuv420p needs even dimensions; an odd width or height is scaled to the even size
/// below it (the ffmpeg CLI would refuse such a source instead).
public final class ClipWriter {
    public struct Settings: Sendable {
        public var width: Int
        public var height: Int
        public var frameRate = Rational(25, 1)
        public var sampleRate = 16_000
        public var crf = 18
        public var preset = "veryfast"
        public var threads = 1
        /// Clockwise rotation players should apply (the source's display matrix, kept as metadata).
        public var rotationDegrees = 0
        public init(width: Int, height: Int) { self.width = width; self.height = height }
    }

    public let settings: Settings
    private let muxer: Muxer
    /// nil when the video is copied packet by packet (`init(path:copyingVideoFrom:…)`).
    private let video: CodecEncoder?
    private let audio: CodecEncoder?
    private let videoStream: Int
    private let audioStream: Int?
    private var scaler: OpaquePointer?
    private var scalerInput: (w: Int32, h: Int32, fmt: Int32)?
    private let converted: Frame
    private let audioFrame: Frame
    private let packet: Packet
    private var videoCount: Int64 = 0
    private var audioCount: Int64 = 0
    private var pendingSamples: [Float] = []

    public convenience init(path: String, settings: Settings, withAudio: Bool = true) throws {
        try self.init(path: path, settings: settings, withAudio: withAudio, videoSource: nil)
    }

    /// A writer that copies an existing H.264 stream's packets (`writeVideoPacket`) instead of
    /// encoding frames, and encodes new audio: how published clips get their shifted audio without
    /// a second generation of video compression.
    public convenience init(path: String, copyingVideoFrom stream: UnsafeMutablePointer<AVStream>, sampleRate: Int) throws {
        let par = stream.pointee.codecpar!.pointee
        var settings = Settings(width: Int(par.width), height: Int(par.height))
        settings.sampleRate = sampleRate
        try self.init(path: path, settings: settings, withAudio: true, videoSource: stream)
    }

    private init(path: String, settings: Settings, withAudio: Bool, videoSource: UnsafeMutablePointer<AVStream>?) throws {
        var s = settings
        s.width &= ~1
        s.height &= ~1
        self.settings = s
        muxer = try Muxer(path: path, format: "mp4")
        let globalHeader = (muxer.context.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER) != 0
        if let videoSource {
            video = nil
            guard let st = avformat_new_stream(muxer.context, nil) else { throw MediaError.allocation("AVStream") }
            try ff("avcodec_parameters_copy", avcodec_parameters_copy(st.pointee.codecpar, videoSource.pointee.codecpar))
            st.pointee.codecpar.pointee.codec_tag = 0
            st.pointee.time_base = videoSource.pointee.time_base
            videoStream = Int(st.pointee.index)
        } else {
            let encoder = try CodecEncoder(codecName: "libx264", options: ["crf": String(s.crf), "preset": s.preset]) { c in
                c.pointee.width = Int32(s.width)
                c.pointee.height = Int32(s.height)
                c.pointee.pix_fmt = AV_PIX_FMT_YUV420P
                c.pointee.time_base = s.frameRate.inverted.av
                c.pointee.framerate = s.frameRate.av
                c.pointee.thread_count = Int32(s.threads)
                if globalHeader { c.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
            }
            video = encoder
            videoStream = try muxer.addStream(for: encoder)
        }
        if s.rotationDegrees % 360 != 0 {
            let st = muxer.context.pointee.streams[videoStream]!
            guard let side = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, 9 * 4) else { throw MediaError.allocation("display matrix") }
            // av_display_rotation_set takes the clockwise angle (av_display_rotation_get returns it negated).
            side.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_set($0, Double(s.rotationDegrees)) }
        }
        if withAudio {
            let a = try CodecEncoder(codecName: "aac", options: [:]) { c in
                c.pointee.sample_rate = Int32(s.sampleRate)
                c.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
                av_channel_layout_default(&c.pointee.ch_layout, 1)
                c.pointee.time_base = AVRational(num: 1, den: Int32(s.sampleRate))
                c.pointee.bit_rate = 64_000
                if globalHeader { c.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
            }
            audio = a
            audioStream = try muxer.addStream(for: a)
        } else {
            audio = nil
            audioStream = nil
        }
        converted = try Frame()
        audioFrame = try Frame()
        packet = try Packet()
        try muxer.writeHeader()
    }

    deinit { sws_freeContext(scaler) }

    /// Appends one frame at the next timeline slot (any size or pixel format: it is converted).
    public func writeVideo(_ frame: Frame) throws {
        guard let video else { preconditionFailure("writeVideo on a writer that copies video packets") }
        let f = frame.pointer.pointee
        let signature = (f.width, f.height, f.format)
        if scalerInput == nil || scalerInput! != signature {
            sws_freeContext(scaler)
            scaler = sws_getContext(f.width, f.height, AVPixelFormat(rawValue: f.format),
                                    Int32(settings.width), Int32(settings.height), AV_PIX_FMT_YUV420P,
                                    SWS_BICUBIC, nil, nil, nil)
            guard scaler != nil else { throw MediaError.allocation("SwsContext") }
            scalerInput = signature
        }
        converted.unref()
        converted.pointer.pointee.width = Int32(settings.width)
        converted.pointer.pointee.height = Int32(settings.height)
        converted.pointer.pointee.format = AV_PIX_FMT_YUV420P.rawValue
        try ff("av_frame_get_buffer", av_frame_get_buffer(converted.pointer, 0))
        try withUnsafePointer(to: frame.pointer.pointee.data) { src in
            try withUnsafePointer(to: frame.pointer.pointee.linesize) { srcStride in
                try withUnsafeMutablePointer(to: &converted.pointer.pointee.data) { dst in
                    try withUnsafeMutablePointer(to: &converted.pointer.pointee.linesize) { dstStride in
                        let s = UnsafeRawPointer(src).assumingMemoryBound(to: UnsafePointer<UInt8>?.self)
                        let d = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UnsafeMutablePointer<UInt8>?.self)
                        let ss = UnsafeRawPointer(srcStride).assumingMemoryBound(to: Int32.self)
                        let ds = UnsafeMutableRawPointer(dstStride).assumingMemoryBound(to: Int32.self)
                        try ff("sws_scale", sws_scale(scaler, s, ss, 0, f.height, d, ds))
                    }
                }
            }
        }
        converted.pointer.pointee.pts = videoCount
        videoCount += 1
        try encode(video, converted, stream: videoStream)
    }

    /// Appends one packet of the copied video stream (timestamps in `timeBase`).
    public func writeVideoPacket(_ packet: Packet, timeBase: Rational) throws {
        precondition(video == nil, "writeVideoPacket on a writer that encodes video")
        try muxer.write(packet, stream: videoStream, timeBase: timeBase)
        videoCount += 1
    }

    /// Appends mono samples at the writer's sample rate.
    public func writeAudio(_ samples: [Float]) throws {
        guard let audio else { return }
        pendingSamples.append(contentsOf: samples)
        let chunk = Int(audio.context.pointee.frame_size)
        var start = 0
        while pendingSamples.count - start >= chunk {
            try encodeAudioChunk(pendingSamples[start..<(start + chunk)])
            start += chunk
        }
        pendingSamples.removeFirst(start)
    }

    /// Flushes the encoders and writes the trailer. The file is complete only after this returns.
    public func finish() throws {
        if audio != nil, !pendingSamples.isEmpty {
            try encodeAudioChunk(pendingSamples[...])
            pendingSamples.removeAll()
        }
        if let video { try encode(video, nil, stream: videoStream) }
        if let audio, let audioStream { try encode(audio, nil, stream: audioStream) }
        try muxer.finish()
    }

    public var videoFramesWritten: Int { Int(videoCount) }
    public var audioSamplesWritten: Int { Int(audioCount) }

    private func encodeAudioChunk(_ samples: ArraySlice<Float>) throws {
        guard let audio, let audioStream else { return }
        audioFrame.unref()
        audioFrame.pointer.pointee.nb_samples = Int32(samples.count)
        audioFrame.pointer.pointee.format = AV_SAMPLE_FMT_FLTP.rawValue
        audioFrame.pointer.pointee.sample_rate = Int32(settings.sampleRate)
        av_channel_layout_default(&audioFrame.pointer.pointee.ch_layout, 1)
        try ff("av_frame_get_buffer(audio)", av_frame_get_buffer(audioFrame.pointer, 0))
        let plane = UnsafeMutableRawPointer(audioFrame.pointer.pointee.data.0!).assumingMemoryBound(to: Float.self)
        samples.withUnsafeBufferPointer { plane.update(from: $0.baseAddress!, count: samples.count) }
        audioFrame.pointer.pointee.pts = audioCount
        audioCount += Int64(samples.count)
        try encode(audio, audioFrame, stream: audioStream)
    }

    private func encode(_ encoder: CodecEncoder, _ frame: Frame?, stream: Int) throws {
        while try encoder.send(frame) == .again { try drain(encoder, stream: stream) }
        try drain(encoder, stream: stream)
    }

    private func drain(_ encoder: CodecEncoder, stream: Int) throws {
        while try encoder.receive(into: packet) == .ok {
            // x264's flushed packets carry no duration; the MP4 muxer would then give the last sample
            // a zero duration and its edit list would hide the last frame. One frame, as the ffmpeg
            // CLI fills in.
            if stream == videoStream, packet.pointer.pointee.duration <= 0 { packet.pointer.pointee.duration = 1 }
            try muxer.write(packet, stream: stream, timeBase: Rational(encoder.context.pointee.time_base))
        }
    }
}
