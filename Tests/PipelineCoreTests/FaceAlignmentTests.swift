import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// Parity with `golden/affine` (old path, float64): matrices within 1e-9, smoothed landmarks within 1e-4.
@Suite struct FaceAlignmentTests {
    static func golden() throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: Golden.directory.appendingPathComponent("affine/affine.safetensors"))
    }
    static func points(_ values: [Double]) -> [Point2] { stride(from: 0, to: values.count, by: 2).map { Point2(values[$0], values[$0 + 1]) } }

    func expectClose(_ m: AffineMatrix, _ expected: [Double], _ tolerance: Double, _ label: String) {
        let worst = maxDifference(m.values, expected)
        #expect(worst <= tolerance, "\(label): largest difference \(worst); got \(m.values), expected \(expected)")
    }

    @Test func templateFor256And512() {
        let t256 = AlignmentTemplate(resolution: 256), t512 = AlignmentTemplate(resolution: 512)
        #expect(t256.cropWidth == 210 && t256.cropHeight == 280)
        #expect(t512.cropWidth == 420 && t512.cropHeight == 560)
        #expect(abs(t256.points[0].x - 47.6) < 1e-12 && t256.points[2] == Point2(105, 112))
    }

    @Test func matricesMatchTheReference() throws {
        let g = try Self.golden()
        let f1 = Self.points(try g.float32("landmarks68_f1").map(Double.init))
        let lmk3 = Self.points(try g.float64("lmk3_f1"))
        let three = alignmentPoints(f1, float32Mean: true)
        #expect(zip(three, lmk3).allSatisfy { abs($0.x - $1.x) < 1e-12 && abs($0.y - $1.y) < 1e-12 })

        var plain = FaceAligner(resolution: 256, smoothing: false)
        expectClose(plain.matrix(for: f1), try g.float64("M_f1_nosmooth"), 1e-9, "M_f1_nosmooth")

        var aligner = FaceAligner(resolution: 256)
        let s1 = aligner.smooth(f1)
        #expect(s1 == f1, "the first frame passes through")
        expectClose(aligner.matrix(for: s1), try g.float64("M_f1"), 1e-9, "M_f1")
        let bias1 = try g.float64("p_bias_f1")
        #expect(abs(aligner.noseBias!.x - bias1[0]) < 1e-9 && abs(aligner.noseBias!.y - bias1[1]) < 1e-9)

        let f2 = Self.points(try g.float32("landmarks68_f2_raw").map(Double.init))
        let s2 = aligner.smooth(f2)
        let expectedS2 = Self.points(try g.float64("landmarks68_f2_smoothed"))
        #expect(zip(s2, expectedS2).map { max(abs($0.x - $1.x), abs($0.y - $1.y)) }.max()! <= 1e-4)
        expectClose(aligner.matrix(for: s2), try g.float64("M_f2"), 1e-9, "M_f2")
        let bias2 = try g.float64("p_bias_f2")
        #expect(abs(aligner.noseBias!.x - bias2[0]) < 1e-9 && abs(aligner.noseBias!.y - bias2[1]) < 1e-9)
    }

    /// The transform maps the three points onto the template when they are a similar triangle,
    /// rotation and reflection cases included.
    @Test func similarityRecoversKnownTransforms() {
        let template = AlignmentTemplate(resolution: 512).points
        for (angle, scale, shift) in [(0.0, 1.0, Point2(0, 0)), (0.3, 0.5, Point2(120, -40)), (-2.5, 3.2, Point2(-7, 900))] {
            let c = cos(angle), s = sin(angle)
            // source = inverse(similarity)(template)
            let source = template.map { p in Point2((c * p.x - s * p.y) * scale + shift.x, (s * p.x + c * p.y) * scale + shift.y) }
            let m = similarityTransform(from: source, to: template).matrix
            for (a, b) in zip(source.map(m.apply), template) { #expect(abs(a.x - b.x) < 1e-9 && abs(a.y - b.y) < 1e-9) }
            let back = m.inverse.apply(m.apply(Point2(3, 4)))
            #expect(abs(back.x - 3) < 1e-9 && abs(back.y - 4) < 1e-9)
        }
    }
}
