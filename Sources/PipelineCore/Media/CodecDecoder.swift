import CFFmpeg

/// An open decoder (`AVCodecContext`) for one stream, driven by send/receive.
public final class CodecDecoder {
    public let context: UnsafeMutablePointer<AVCodecContext>
    public let timeBase: Rational

    /// - Parameter threads: decoder threads; 0 lets FFmpeg choose (one per core).
    public init(stream: UnsafeMutablePointer<AVStream>, threads: Int = 0) throws(MediaError) {
        let par = stream.pointee.codecpar
        guard let codec = avcodec_find_decoder(par!.pointee.codec_id) else {
            throw .codecUnavailable(name: String(cString: avcodec_get_name(par!.pointee.codec_id)))
        }
        guard let ctx = avcodec_alloc_context3(codec) else { throw .allocation("AVCodecContext") }
        context = ctx
        timeBase = Rational(stream.pointee.time_base)
        try ff("avcodec_parameters_to_context", avcodec_parameters_to_context(ctx, par))
        // As the ffmpeg CLI does: the decoder's best-effort timestamps use the stream's time base.
        ctx.pointee.pkt_timebase = stream.pointee.time_base
        ctx.pointee.thread_count = Int32(threads)
        try ff("avcodec_open2(\(String(cString: codec.pointee.name)))", avcodec_open2(ctx, codec, nil))
    }

    deinit {
        var c: UnsafeMutablePointer<AVCodecContext>? = context
        avcodec_free_context(&c)
    }

    /// Sends one packet, or `nil` to start draining.
    public func send(_ packet: Packet?) throws(MediaError) -> Step {
        try ffStep("avcodec_send_packet", avcodec_send_packet(context, packet?.pointer))
    }

    /// Receives one decoded frame into `frame`.
    public func receive(into frame: Frame) throws(MediaError) -> Step {
        frame.unref()
        return try ffStep("avcodec_receive_frame", avcodec_receive_frame(context, frame.pointer))
    }

    /// When set, frames no other frame references are not decoded at all (`skip_frame = NONREF`):
    /// used while decoding forward from a keyframe to the first frame actually wanted.
    public var skipsNonReferenceFrames: Bool {
        get { context.pointee.skip_frame == AVDISCARD_NONREF }
        set { context.pointee.skip_frame = newValue ? AVDISCARD_NONREF : AVDISCARD_DEFAULT }
    }

    /// The frame rate the codec reports (from the bitstream), if any.
    public var codecFrameRate: Rational? {
        let r = context.pointee.framerate
        return r.num > 0 && r.den > 0 ? Rational(r) : nil
    }
}
