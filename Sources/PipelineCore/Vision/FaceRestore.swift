import CVision
import Foundation

/// Puts a generated R×R face back into its video frame (LatentSync's `AlignRestore.restore_img`):
/// the face resized to the alignment crop, warped back through the inverse of the frame's
/// alignment, and blended with a soft mask — the crop rectangle eroded by `w = ⌊√area⌋ / 20` pixels
/// and feathered over as many — so the seam fades into the original frame.
///
/// Difference from upstream: the soft mask is made in crop coordinates (an eroded, feathered
/// rectangle: separable, exact) and warped with the face, rather than warped first and then eroded
/// and blurred in the full frame; the result is the same shape without a full-frame blur per frame.
public struct FaceRestore: Sendable {
    public let template: AlignmentTemplate
    /// The crop-space mask, 0…255, cropWidth × cropHeight.
    let softMask: RGBImage

    public init(template: AlignmentTemplate) {
        self.template = template
        let (w, h) = (template.cropWidth, template.cropHeight)
        let edge = max(1, Int(Double(w * h).squareRoot()) / 20)
        // 1-D profile: 0 within `edge` of the border, then a linear ramp over `edge` pixels to 1.
        func profile(_ n: Int) -> [Double] {
            (0..<n).map { i in
                let d = Double(min(i, n - 1 - i) - edge + 1) / Double(edge)
                return min(1, max(0, d))
            }
        }
        let px = profile(w), py = profile(h)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let v = UInt8((px[x] * py[y] * 255).rounded())
                pixels[(y * w + x) * 3] = v; pixels[(y * w + x) * 3 + 1] = v; pixels[(y * w + x) * 3 + 2] = v
            }
        }
        softMask = RGBImage(width: w, height: h, pixels: pixels)
    }

    /// `frame` with `face` (R×R, aligned with `matrix`) pasted back.
    public func paste(_ face: RGBImage, into frame: RGBImage, matrix: AffineMatrix) throws -> RGBImage {
        let crop = try face.resized(width: template.cropWidth, height: template.cropHeight, interpolation: .lanczos4)
        let back = matrix.inverse
        let warped = try crop.warpedLanczos(back, width: frame.width, height: frame.height, border: 0)
        let mask = try softMask.warpedLanczos(back, width: frame.width, height: frame.height, border: 0)
        var out = frame
        out.pixels.withUnsafeMutableBufferPointer { dst in
            warped.pixels.withUnsafeBufferPointer { src in
                mask.pixels.withUnsafeBufferPointer { m in cvision_blend(dst.baseAddress, src.baseAddress, m.baseAddress, Int64(frame.width * frame.height)) }
            }
        }
        return out
    }
}
