import CVision
import Foundation

/// BRISQUE (Mittal et al. 2012) through OpenCV contrib's quality module: a no-reference quality
/// score, lower is better (about 0 pristine … 100 very poor). One scorer per thread.
public final class BrisqueScorer {
    private let pointer: OpaquePointer

    public init(model: String, range: String) throws {
        for path in [model, range] where !FileManager.default.fileExists(atPath: path) {
            throw VisionError.brisqueModelMissing(path: path)
        }
        guard let p = cvision_brisque_create(model, range) else {
            throw VisionError.operation("load BRISQUE \(model)", String(cString: cvision_last_error()))
        }
        pointer = p
    }

    deinit { cvision_brisque_destroy(pointer) }

    public func score(_ image: RGBImage) throws -> Double {
        var result = 0.0
        let status = image.pixels.withUnsafeBufferPointer { px in
            cvision_brisque_score(pointer, px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width * 3), &result)
        }
        try VisionError.check(status, "BRISQUE")
        return result
    }
}

/// Chosen frames of a short clip (an aligned piece), decoded in order and converted to RGB.
public enum ClipFrames {
    /// The frames at `indices` (in decoding order of a constant-rate clip); throws when the clip
    /// has fewer frames than the largest index needs.
    public static func read(_ path: String, indices: [Int]) throws -> [Int: RGBImage] {
        let wanted = Set(indices)
        let demuxer = try Demuxer(path: path)
        guard let stream = demuxer.pipelineStreams.video else { throw MediaError.noStream(kind: "video", path: path) }
        demuxer.discardAll(except: [stream])
        let decoder = try CodecDecoder(stream: demuxer.stream(stream), threads: 1)
        let converter = PackedPictureConverter(order: .rgb)
        let frame = try Frame(), packet = try Packet()
        var index = 0
        var found: [Int: RGBImage] = [:]
        func drain() throws {
            while try decoder.receive(into: frame) == .ok {
                if wanted.contains(index) { found[index] = try converter.image(of: frame) }
                index += 1
            }
        }
        while found.count < wanted.count, try demuxer.read(into: packet) == .ok {
            guard packet.streamIndex == stream else { continue }
            while try decoder.send(packet) == .again { try drain() }
            try drain()
        }
        if found.count < wanted.count {
            _ = try decoder.send(nil)
            try drain()
        }
        guard found.count == wanted.count else {
            throw MediaError.sourceChanged(path: path, detail: "has \(index) frames; frame \(wanted.max()!) was expected")
        }
        return found
    }
}
