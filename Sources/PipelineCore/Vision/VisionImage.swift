import CVision
import Foundation

/// A packed 8-bit RGB image (stride = width × 3).
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGB image of \(width)×\(height) needs \(width * height * 3) bytes")
        self.width = width; self.height = height; self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: fill, count: width * height * 3))
    }

    /// `cv2.warpAffine(self, matrix, (width, height), INTER_LANCZOS4, BORDER_CONSTANT, border)`,
    /// bit-exact, by CVision's own kernel (lanczos.cpp: about 6× faster than OpenCV's on the 210×280
    /// face crop; VisionTests compares the two).
    public func warpedLanczos(_ matrix: AffineMatrix, width: Int, height: Int, border: UInt8 = 127) throws -> RGBImage {
        var out = RGBImage(width: width, height: height)
        let m = matrix.values
        let status = pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                m.withUnsafeBufferPointer { mp in
                    cvision_lanczos_warp(src.baseAddress, Int32(self.width), Int32(self.height), Int32(self.width * 3), 3,
                                         mp.baseAddress, dst.baseAddress, Int32(width), Int32(height), Int32(width * 3), border)
                }
            }
        }
        guard status == 0 else {
            throw VisionError.operation("warpAffine", "cannot warp a \(self.width)×\(self.height) image to \(width)×\(height) with \(m)")
        }
        return out
    }

    /// `cv2.resize(self, (width, height), interpolation)` (Lanczos-4 by CVision's own bit-exact kernel).
    public func resized(width: Int, height: Int, interpolation: Interpolation) throws -> RGBImage {
        var out = RGBImage(width: width, height: height)
        if interpolation == .lanczos4 {
            let status = pixels.withUnsafeBufferPointer { src in
                out.pixels.withUnsafeMutableBufferPointer { dst in
                    cvision_lanczos_resize(src.baseAddress, Int32(self.width), Int32(self.height), Int32(self.width * 3), 3,
                                           dst.baseAddress, Int32(width), Int32(height), Int32(width * 3))
                }
            }
            guard status == 0 else { throw VisionError.operation("resize", "cannot resize \(self.width)×\(self.height) to \(width)×\(height)") }
            return out
        }
        let status = pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                cvision_resize(src.baseAddress, Int32(self.width), Int32(self.height), Int32(self.width * 3), 3,
                               dst.baseAddress, Int32(width), Int32(height), Int32(width * 3), interpolation.rawValue)
            }
        }
        try VisionError.check(status, "resize")
        return out
    }

    /// The `width` × `height` part of the image at (`x`, `y`) (must lie inside it).
    public func cropped(x: Int, y: Int, width: Int, height: Int) -> RGBImage {
        precondition(x >= 0 && y >= 0 && width > 0 && height > 0 && x + width <= self.width && y + height <= self.height, "crop outside the image")
        var out = RGBImage(width: width, height: height)
        pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for row in 0..<height {
                    (dst.baseAddress! + row * width * 3).update(from: src.baseAddress! + ((y + row) * self.width + x) * 3, count: width * 3)
                }
            }
        }
        return out
    }

    /// The image turned `degrees` clockwise (0, 90, 180 or 270).
    public func rotated(clockwise degrees: Int) throws -> RGBImage {
        let d = ((degrees % 360) + 360) % 360
        guard d != 0 else { return self }
        let code: Int32 = d == 90 ? 0 : (d == 180 ? 1 : 2)
        var out = d == 180 ? RGBImage(width: width, height: height) : RGBImage(width: height, height: width)
        let status = pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                cvision_rotate(src.baseAddress, Int32(self.width), Int32(self.height), Int32(self.width * 3), 3, dst.baseAddress, Int32(out.width * 3), code)
            }
        }
        try VisionError.check(status, "rotate")
        return out
    }

    /// OpenCV's interpolation codes.
    public enum Interpolation: Int32, Sendable { case linear = 1, area = 3, lanczos4 = 4 }
}

/// Failures at the CVision boundary, with the operation and OpenCV's or dlib's message.
public enum VisionError: Error, CustomStringConvertible, Equatable {
    case operation(String, String)
    case modelMissing(path: String)
    case brisqueModelMissing(path: String)

    public var description: String {
        switch self {
        case let .operation(name, message): "\(name) failed: \(message)"
        case let .brisqueModelMissing(path):
            "BRISQUE model file \(path) not found; install Debian's opencv-data (it ships the BRISQUE model and range files) or set [quality] brisque_model and brisque_range"
        case let .modelMissing(path):
            "landmark model \(path) not found; install Debian's libdlib-data (it ships shape_predictor_68_face_landmarks.dat) or set [align] landmark_model"
        }
    }

    /// Reads the thread's message in the same synchronous frame as the call that failed.
    static func check(_ status: Int32, _ name: String) throws {
        guard status == 0 else { throw VisionError.operation(name, String(cString: cvision_last_error())) }
    }
}
