import CFFmpeg
import Foundation

/// What the aligned clip's pixels say about the mouth, frame by frame: how dark the mouth region is
/// and how much it changes from the frame before. Unlike the landmarks' lip distances, these do
/// not depend on the landmark model following a mouth it was not trained on: an open mouth is a
/// darker, changing patch wherever the lips are.
enum MouthRegion {
    struct Signals { var darkness: [Double]; var motion: [Double] }

    /// The region is the box around the inner and outer lips (points 48–67) in the aligned frame,
    /// taken as the median over the clip (the alignment holds the face still), widened by a quarter
    /// of its width and extended down by half its height (an opening jaw moves the lower lip).
    static func signals(_ clip: SyncClip) throws -> Signals {
        let aligned = clip.alignedLandmarks()
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        let x0 = median(aligned.map { p in (48...67).map { p[$0].x }.min()! })
        let x1 = median(aligned.map { p in (48...67).map { p[$0].x }.max()! })
        let y0 = median(aligned.map { p in (48...67).map { p[$0].y }.min()! })
        let y1 = median(aligned.map { p in (48...67).map { p[$0].y }.max()! })
        let w = x1 - x0, h = y1 - y0
        let box = (x: max(0, Int(x0 - w / 4)), y: max(0, Int(y0 - h / 4)), x1: Int(x1 + w / 4), y1: Int(y1 + h / 2))

        let demuxer = try Demuxer(path: clip.video)
        guard let v = demuxer.pipelineStreams.video else { throw MediaError.noStream(kind: "video", path: clip.video) }
        demuxer.discardAll(except: [v])
        let decoder = try CodecDecoder(stream: demuxer.stream(v), threads: 1)
        let packet = try Packet(), frame = try Frame()
        var darkness: [Double] = [], motion: [Double] = []
        var previous: [UInt8] = []
        func take() throws {
            while try decoder.receive(into: frame) == .ok {
                let f = frame.pointer.pointee
                guard let plane = f.data.0 else { continue }
                let stride = Int(f.linesize.0)
                let xa = min(box.x, frame.width - 1), xb = min(box.x1, frame.width), ya = min(box.y, frame.height - 1), yb = min(box.y1, frame.height)
                var luma: [UInt8] = []
                luma.reserveCapacity((xb - xa) * (yb - ya))
                for y in ya..<yb { for x in xa..<xb { luma.append(plane[y * stride + x]) } }
                let mean = luma.reduce(0.0) { $0 + Double($1) } / Double(max(1, luma.count))
                darkness.append(-mean)
                motion.append(previous.count == luma.count ? zip(luma, previous).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(luma.count) : 0)
                previous = luma
            }
        }
        while try demuxer.read(into: packet) == .ok {
            guard packet.streamIndex == v else { continue }
            while try decoder.send(packet) == .again { try take() }
            try take()
        }
        _ = try decoder.send(nil)
        try take()
        guard darkness.count == clip.frameCount else {
            throw MediaError.sourceChanged(path: clip.video, detail: "\(darkness.count) frames, the landmarks have \(clip.frameCount)")
        }
        if motion.count > 1 { motion[0] = motion[1] }
        return Signals(darkness: darkness, motion: motion)
    }
}
