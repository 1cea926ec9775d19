import Foundation

/// The per-frame landmarks and alignment matrices of an aligned clip, stored beside it as
/// `<clip>.landmarks` for later stages (mouth opening for sync, restoring for inference).
///
/// Binary, little-endian: "PAL1", UInt32 frame count, UInt32 resolution, then per frame 68 × (x, y)
/// Float32 landmarks in the upright source frame's pixels, and the 2×3 Float64 source → crop matrix.
public struct AlignedLandmarks: Sendable, Equatable {
    public var resolution: Int
    public var landmarks: [[Point2]]
    public var matrices: [AffineMatrix]

    public init(resolution: Int, landmarks: [[Point2]] = [], matrices: [AffineMatrix] = []) {
        self.resolution = resolution; self.landmarks = landmarks; self.matrices = matrices
    }

    private static let magic: UInt32 = 0x314C_4150 // "PAL1"

    public func serialized() -> Data {
        var d = Data()
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        put(Self.magic); put(UInt32(landmarks.count)); put(UInt32(resolution))
        for (points, m) in zip(landmarks, matrices) {
            for p in points { put(Float(p.x).bitPattern); put(Float(p.y).bitPattern) }
            for v in m.values { put(v.bitPattern) }
        }
        return d
    }

    public init(serialized data: Data) throws {
        let b = [UInt8](data)
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let n = MemoryLayout<T>.size
            guard at + n <= b.count else { throw FrameMapError.truncated }
            var v: T = 0
            for i in 0..<n { v |= T(b[at + i]) << (8 * i) }
            at += n
            return v
        }
        guard try get(UInt32.self) == Self.magic else { throw FrameMapError.badMagic }
        let count = Int(try get(UInt32.self))
        resolution = Int(try get(UInt32.self))
        landmarks = []; matrices = []
        for _ in 0..<count {
            landmarks.append(try (0..<68).map { _ in Point2(Double(Float(bitPattern: try get(UInt32.self))), Double(Float(bitPattern: try get(UInt32.self)))) })
            let v = try (0..<6).map { _ in Double(bitPattern: try get(UInt64.self)) }
            matrices.append(AffineMatrix(v[0], v[1], v[2], v[3], v[4], v[5]))
        }
    }
}
