import Foundation

/// Which source frame fills each frame of the normalised constant-rate timeline.
///
/// Rule: the selection is exactly the one FFmpeg's `fps` filter makes with its defaults
/// (`round=near`, `eof_action=round`), fed as the `ffmpeg` CLI feeds it (best-effort timestamps,
/// shifted by the container's start time). Why: users compare our clips with `ffmpeg -vf fps=25`,
/// and LatentSync's training data came out of `ffmpeg -r 25`; a home-made rule drifts by a frame
/// on variable-frame-rate input. What breaks otherwise: audio/video offsets measured later are off
/// by the drift. `Tests/StagesTests/FrameMapParityTests.swift` compares against `ffmpeg -f framecrc`.
public struct FrameMap: Sendable, Equatable {
    /// The source video stream's time base.
    public var timeBase: Rational
    /// Added to a source timestamp to place it on the timeline (the CLI's `-start_time` shift).
    public var timestampOffset: Int64
    /// The timeline's frame rate (25/1 by default).
    public var outputRate: Rational
    /// Timeline timestamp (in 1/outputRate) of output frame 0.
    public var firstOutputPts: Int64
    /// Best-effort timestamp of every decoded source frame, in decode output order, before the offset.
    public var sourcePts: [Int64]
    /// How many timeline frames each source frame fills (0: dropped).
    public var repeats: [UInt32]
    /// Frames the decoder released after the end of the file without a timestamp were given one
    /// (`DecodeClock`). False for maps stored by releases before that rule: they are read as made.
    public var timesFramesAtEnd: Bool

    public var outputFrameCount: Int { repeats.reduce(0) { $0 + Int($1) } }
    /// Time of output frame 0 on the shifted source timeline, in seconds.
    public var startSeconds: Double { Double(firstOutputPts) * outputRate.inverted.seconds }

    /// For each output frame, the index of the source frame it shows.
    public var sourceIndexPerOutputFrame: [Int] {
        var result: [Int] = []
        result.reserveCapacity(outputFrameCount)
        for (i, r) in repeats.enumerated() where r > 0 { result.append(contentsOf: repeatElement(i, count: Int(r))) }
        return result
    }

    // MARK: Binary form (stored as a BLOB; ~12 bytes per source frame)

    /// "PFM1": maps made before `timesFramesAtEnd`; "PFM2": the same layout, made with it.
    private static let magic1: UInt32 = 0x5046_4D31
    private static let magic2: UInt32 = 0x5046_4D32

    public func serialized() -> Data {
        var data = Data()
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        put(timesFramesAtEnd ? Self.magic2 : Self.magic1)
        put(timeBase.num); put(timeBase.den); put(timestampOffset)
        put(outputRate.num); put(outputRate.den); put(firstOutputPts)
        put(UInt64(sourcePts.count))
        for p in sourcePts { put(p) }
        for r in repeats { put(r) }
        return data
    }

    public init(serialized data: Data) throws {
        var offset = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= data.count else { throw FrameMapError.truncated }
            var v: T = 0
            _ = withUnsafeMutableBytes(of: &v) { data.copyBytes(to: $0, from: data.index(data.startIndex, offsetBy: offset)..<data.index(data.startIndex, offsetBy: offset + size)) }
            offset += size
            return T(littleEndian: v)
        }
        let magic = try get(UInt32.self)
        guard magic == Self.magic1 || magic == Self.magic2 else { throw FrameMapError.badMagic }
        timesFramesAtEnd = magic == Self.magic2
        timeBase = Rational(try get(Int64.self), try get(Int64.self))
        timestampOffset = try get(Int64.self)
        outputRate = Rational(try get(Int64.self), try get(Int64.self))
        firstOutputPts = try get(Int64.self)
        let n = Int(try get(UInt64.self))
        guard n <= (data.count - offset) / 12 else { throw FrameMapError.truncated }
        sourcePts = try (0..<n).map { _ in try get(Int64.self) }
        repeats = try (0..<n).map { _ in try get(UInt32.self) }
    }

    public init(timeBase: Rational, timestampOffset: Int64, outputRate: Rational, firstOutputPts: Int64, sourcePts: [Int64], repeats: [UInt32],
                timesFramesAtEnd: Bool = true) {
        self.timesFramesAtEnd = timesFramesAtEnd
        self.timeBase = timeBase
        self.timestampOffset = timestampOffset
        self.outputRate = outputRate
        self.firstOutputPts = firstOutputPts
        self.sourcePts = sourcePts
        self.repeats = repeats
    }
}

public enum FrameMapError: Error, CustomStringConvertible {
    case badMagic, truncated
    public var description: String { "the stored frame map is damaged (\(self == .badMagic ? "wrong header" : "truncated")); rerun with the source rescanned" }
}

/// The decision procedure of FFmpeg's `vf_fps.c` (round to nearest), one source frame at a time.
///
/// The filter holds at most two frames. With two, it drops the first when the second already
/// reaches the next output slot; otherwise it emits the first for that slot and advances. At the end
/// it emits the last frame until the slot reaches the end-of-stream time. `push` and `finish` return
/// the timeline slots each frame fills as they become known (a lag of one source frame).
public struct FPSSelector: Sendable {
    public let inputTimeBase: Rational
    public let outputRate: Rational
    public private(set) var nextPts: Int64?
    public private(set) var firstOutputPts: Int64?
    /// Source frames waiting for a decision: (source index, timeline pts).
    private var buffer: [(index: Int, pts: Int64?)] = []

    public init(inputTimeBase: Rational, outputRate: Rational) {
        self.inputTimeBase = inputTimeBase
        self.outputRate = outputRate
    }

    /// An output event: source frame `sourceIndex` fills timeline slot `outputPts`.
    public struct Emission: Sendable, Equatable { public var sourceIndex: Int; public var outputPts: Int64 }

    /// Feeds source frame `index` with timestamp `pts` (input time base, already shifted).
    public mutating func push(index: Int, pts: Int64?) -> [Emission] {
        let out = pts.map { rescale($0, from: inputTimeBase, to: outputRate.inverted) }
        buffer.append((index, out))
        var emitted: [Emission] = []
        while buffer.count == 2 { step(eofPts: nil, into: &emitted) }
        return emitted
    }

    /// Ends the stream at `eofPts` (input time base, shifted) and returns the remaining emissions.
    public mutating func finish(eofPts: Int64) -> [Emission] {
        let status = rescale(eofPts, from: inputTimeBase, to: outputRate.inverted)
        var emitted: [Emission] = []
        while !buffer.isEmpty { step(eofPts: status, into: &emitted) }
        return emitted
    }

    private mutating func step(eofPts: Int64?, into emitted: inout [Emission]) {
        if nextPts == nil {
            guard let first = buffer[0].pts else { buffer.removeFirst(); return } // no timestamp: discarded, as the filter does
            nextPts = first
            firstOutputPts = first
        }
        let next = nextPts!
        let secondReaches = buffer.count == 2 && (buffer[1].pts ?? Int64.min) <= next
        let ended = eofPts.map { $0 <= next } ?? false
        if secondReaches || ended {
            buffer.removeFirst()
        } else {
            emitted.append(Emission(sourceIndex: buffer[0].index, outputPts: next))
            nextPts = next + 1
        }
    }
}
