#if canImport(Glibc)
import Glibc
#endif

/// xorshift64* seeded deterministically: the same seed gives the same values on every platform.
/// Random weights and the generator's initial noise draw from it (it is not torch's stream).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    public mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform in [−1, 1) with 24 random bits.
    public mutating func symmetricUnit() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }

    /// Uniform in (0, 1) with 53 random bits.
    public mutating func openUnit() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }

    /// Standard normal values (Box–Muller).
    public mutating func gaussians(_ count: Int) -> [Float] {
        (0..<count).map { _ in
            let u = openUnit(), v = openUnit()
            return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
        }
    }
}

extension Array where Element == Float {
    /// Consecutive rows of `width` values.
    public func rows(width: Int) -> [[Float]] {
        (0..<(count / width)).map { Array(self[($0 * width)..<(($0 + 1) * width)]) }
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    public func chunked(_ size: Int) -> [ArraySlice<Element>] {
        Swift.stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
