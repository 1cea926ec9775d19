import CFFmpeg

/// An exact rational number for frame rates, time bases and timestamps.
///
/// Rule: time is never a `Double` frame rate. A `Double` fps (29.97 written as 29.97) cannot say
/// which frame a timestamp lands on without an epsilon, and the epsilon differs between tools;
/// FFmpeg and PySceneDetect both moved to rationals for that reason.
public struct Rational: Hashable, Sendable, Codable, CustomStringConvertible {
    public var num: Int64
    public var den: Int64

    public init(_ num: Int64, _ den: Int64) {
        precondition(den != 0, "Rational with a zero denominator")
        let g = Rational.gcd(abs(num), abs(den))
        let sign: Int64 = den < 0 ? -1 : 1
        self.num = g == 0 ? 0 : sign * num / g
        self.den = g == 0 ? 1 : sign * den / g
    }

    public init(_ q: AVRational) { self.init(Int64(q.num), Int64(q.den == 0 ? 1 : q.den)) }

    public var av: AVRational { AVRational(num: Int32(clamping: num), den: Int32(clamping: den)) }
    public var inverted: Rational { Rational(den, num) }
    public var seconds: Double { Double(num) / Double(den) }
    public var description: String { den == 1 ? "\(num)" : "\(num)/\(den)" }

    static func gcd(_ a: Int64, _ b: Int64) -> Int64 { b == 0 ? a : gcd(b, a % b) }
}

/// How `rescale` rounds; the raw values are FFmpeg's `AVRounding`.
public enum Rounding: UInt32, Sendable {
    case zero = 0, infinity = 1, down = 2, up = 3, nearInfinity = 5
}

/// `value` expressed in `from` units, converted to `to` units, rounded as FFmpeg does
/// (`av_rescale_q_rnd` with `AV_ROUND_PASS_MINMAX`, so INT64_MIN/MAX sentinels pass through).
@inlinable
public func rescale(_ value: Int64, from: Rational, to: Rational, rounding: Rounding = .nearInfinity) -> Int64 {
    av_rescale_q_rnd(value, from.av, to.av, AVRounding(rawValue: rounding.rawValue | AV_ROUND_PASS_MINMAX.rawValue))
}
