import CFFmpeg

/// An open encoder (`AVCodecContext`), driven by send/receive.
public final class CodecEncoder {
    public let context: UnsafeMutablePointer<AVCodecContext>

    /// - Parameter configure: sets size, formats, rates and time base before the codec opens.
    public init(codecName: String, options: [String: String] = [:], configure: (UnsafeMutablePointer<AVCodecContext>) -> Void) throws(MediaError) {
        guard let codec = avcodec_find_encoder_by_name(codecName) else { throw .codecUnavailable(name: codecName) }
        guard let ctx = avcodec_alloc_context3(codec) else { throw .allocation("AVCodecContext") }
        context = ctx
        configure(ctx)
        var dict: OpaquePointer? = nil
        for (k, v) in options { av_dict_set(&dict, k, v, 0) }
        defer { av_dict_free(&dict) }
        try ff("avcodec_open2(\(codecName))", avcodec_open2(ctx, codec, &dict))
    }

    deinit {
        var c: UnsafeMutablePointer<AVCodecContext>? = context
        avcodec_free_context(&c)
    }

    public func send(_ frame: Frame?) throws(MediaError) -> Step {
        try ffStep("avcodec_send_frame", avcodec_send_frame(context, frame?.pointer))
    }

    public func receive(into packet: Packet) throws(MediaError) -> Step {
        packet.unref()
        return try ffStep("avcodec_receive_packet", avcodec_receive_packet(context, packet.pointer))
    }
}

/// An output container (`AVFormatContext` for writing).
public final class Muxer {
    public let path: String
    public let context: UnsafeMutablePointer<AVFormatContext>
    private var headerWritten = false

    public init(path: String, format: String) throws(MediaError) {
        self.path = path
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        try ff("avformat_alloc_output_context2(\(format))", avformat_alloc_output_context2(&ctx, nil, format, path))
        guard let ctx else { throw .allocation("AVFormatContext") }
        context = ctx
    }

    deinit {
        if context.pointee.pb != nil { avio_closep(&context.pointee.pb) }
        avformat_free_context(context)
    }

    /// Adds a stream carrying `encoder`'s output; returns its index.
    public func addStream(for encoder: CodecEncoder) throws(MediaError) -> Int {
        guard let st = avformat_new_stream(context, nil) else { throw .allocation("AVStream") }
        try ff("avcodec_parameters_from_context", avcodec_parameters_from_context(st.pointee.codecpar, encoder.context))
        st.pointee.time_base = encoder.context.pointee.time_base
        return Int(st.pointee.index)
    }

    public func writeHeader() throws(MediaError) {
        try ff("avio_open(\(path))", avio_open(&context.pointee.pb, path, AVIO_FLAG_WRITE))
        try ff("avformat_write_header(\(path))", avformat_write_header(context, nil))
        headerWritten = true
    }

    /// Writes an encoded packet whose timestamps are in `timeBase`.
    public func write(_ packet: Packet, stream: Int, timeBase: Rational) throws(MediaError) {
        packet.pointer.pointee.stream_index = Int32(stream)
        av_packet_rescale_ts(packet.pointer, timeBase.av, context.pointee.streams[stream]!.pointee.time_base)
        try ff("av_interleaved_write_frame(\(path))", av_interleaved_write_frame(context, packet.pointer))
    }

    public func finish() throws(MediaError) {
        precondition(headerWritten, "finish() before writeHeader()")
        try ff("av_write_trailer(\(path))", av_write_trailer(context))
        try ff("avio_closep(\(path))", avio_closep(&context.pointee.pb))
    }
}
