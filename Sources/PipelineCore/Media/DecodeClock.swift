import CFFmpeg

/// The timestamp of every decoded video frame, as the ffmpeg CLI (5.1, `ffmpeg.c`) assigns it:
/// the decoder's best-effort timestamp, except for frames that come out of the decoder after the
/// end of the file without one, which take the CLI's running estimate of the next decoding
/// timestamp (its `dts_buffer`).
///
/// Why: containers without presentation times (AVI with B-frames, packed or not) leave the last
/// frame the decoder releases at the end without a timestamp. Dropping it, as the fps selection
/// does with frames it cannot place, makes our timeline one frame shorter than
/// `ffmpeg -vf fps=25` and than any reader that counts that frame. Both the scan (which makes the
/// frame map) and `NormalizedReader` (which reads by it) run every video packet and frame through
/// one `DecodeClock`, so they cannot disagree.
///
/// Use: `sent(_:)` before a packet goes to the decoder, `received(_:)` for every frame that comes
/// out after it, `draining()` before each frame is asked for once the decoder was told the file
/// ended.
public struct DecodeClock: Sendable {
    public let timeBase: Rational
    /// Microseconds a frame lasts when its packet says nothing (from the frame rate), as ffmpeg.c's `duration_dts`.
    let frameMicros: Int64
    /// ffmpeg.c `ist->next_dts`, in microseconds.
    private var nextDts: Int64?
    /// Microseconds the current packet advances the estimate per frame it yields (at least once).
    private var packetMicros: Int64 = 0
    private var framesOfPacket = 0
    private var packetPending = false
    /// Estimates handed out at the end of the file, oldest first (ffmpeg.c `dts_buffer`).
    private var endEstimates: [Int64?] = []
    private var ended = false
    /// Whether frames released at the end take estimates (false: maps from before this rule).
    public let assignsAtEnd: Bool

    public init(timeBase: Rational, frameRate: Rational?, assignsAtEnd: Bool = true) {
        self.timeBase = timeBase
        self.frameMicros = frameRate.map { $0.num > 0 ? 1_000_000 * $0.den / $0.num : 0 } ?? 0
        self.assignsAtEnd = assignsAtEnd
    }

    /// The clock of `stream` decoded by `decoder`: its frame rate is the codec's, else the stream's average.
    public init(stream: UnsafeMutablePointer<AVStream>, decoder: CodecDecoder, assignsAtEnd: Bool = true) {
        let average = stream.pointee.avg_frame_rate
        self.init(timeBase: Rational(stream.pointee.time_base),
                  frameRate: decoder.codecFrameRate ?? (average.num > 0 && average.den > 0 ? Rational(average) : nil), assignsAtEnd: assignsAtEnd)
    }

    private static let micros = Rational(1, 1_000_000)

    /// A packet goes to the decoder.
    public mutating func sent(_ packet: Packet) {
        finishPacket()
        let dts = packet.pointer.pointee.dts
        if dts != cffmpeg_nopts() { nextDts = rescale(dts, from: timeBase, to: Self.micros) }
        let duration = packet.pointer.pointee.duration
        packetMicros = duration > 0 ? rescale(duration, from: timeBase, to: Self.micros) : frameMicros
        framesOfPacket = 0
        packetPending = true
    }

    /// The file ended; the decoder is being drained.
    public mutating func drainStarts() {
        finishPacket()
        ended = true
    }

    /// A frame is asked for after the end (one call per `avcodec_receive_frame`, answered or not).
    public mutating func draining() {
        guard ended else { return }
        endEstimates.append(nextDts.map { rescale($0, from: Self.micros, to: timeBase) })
        if let d = nextDts, frameMicros > 0 { nextDts = d + frameMicros } else { nextDts = nil }
    }

    /// The timestamp of a frame the decoder returned (stream time base), nil when it has none.
    public mutating func received(_ frame: Frame) -> Int64? {
        if !ended { framesOfPacket += 1 }
        let best = frame.bestEffortTimestamp
        if best != cffmpeg_nopts() { return best }
        guard ended, assignsAtEnd, !endEstimates.isEmpty else { return nil }
        return endEstimates.removeFirst()
    }

    /// The estimate moves on by the last packet's duration once per frame it yielded (at least
    /// once); with no duration known it is lost, as in ffmpeg.c.
    private mutating func finishPacket() {
        guard packetPending else { return }
        packetPending = false
        if let d = nextDts, packetMicros > 0 { nextDts = d + packetMicros * Int64(max(1, framesOfPacket)) } else { nextDts = nil }
    }
}
