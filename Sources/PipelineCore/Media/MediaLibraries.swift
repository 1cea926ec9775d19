import CFFmpeg

/// The FFmpeg build this process runs with (for `pipelined doctor`).
public enum MediaLibraries {
    public static var description: String {
        func v(_ n: UInt32) -> String { "\(n >> 16).\((n >> 8) & 0xFF).\(n & 0xFF)" }
        return "FFmpeg \(String(cString: av_version_info())) (libavformat \(v(avformat_version())), libavcodec \(v(avcodec_version())), "
            + "libavutil \(v(avutil_version())), libswscale \(v(swscale_version())), libswresample \(v(swresample_version())))"
    }
}
