import Foundation

extension Fixtures {
    /// An AVI as DivX 5 and old XviD builds wrote them: MPEG-4 Part 2 with *packed B-frames* at
    /// 23.976 fps, no timestamps but the index, PCM audio beside it.
    ///
    /// Packed means each B-VOP travels in the chunk of the anchor before it, and the chunk where the
    /// B-frame belongs holds a 7-byte placeholder (an "N-VOP", `vop_coded = 0`); a `DivX503b1393p`
    /// user-data string tells decoders so. FFmpeg cannot write this (it only has a filter that undoes
    /// it, `mpeg4_unpack_bframes`), so the fixture is built here: FFmpeg encodes an ordinary MPEG-4
    /// elementary stream with one B-frame between anchors, and this writes the AVI around it with
    /// the chunks packed. Audio is 16-bit mono PCM, one chunk per video chunk.
    ///
    /// - Parameter source: a media file whose video (scaled to `size`, 23.976 fps) and audio
    ///   (16 kHz mono) it carries; nil: a moving test pattern and a beeping tone.
    public static func packedBFrameAVI(_ url: URL, seconds: Double, size: (width: Int, height: Int) = (160, 120), source: URL? = nil) throws {
        let dir = try temporaryDirectory("packed-avi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m4v = dir.appendingPathComponent("video.m4v"), pcm = dir.appendingPathComponent("audio.s16")
        // 23.976 fps: the time base 1001/24000 gives 15-bit VOP time increments (the N-VOP below).
        let video = source.map { ["-i", $0.path, "-vf", "scale=\(size.width):\(size.height),fps=24000/1001"] }
            ?? ["-f", "lavfi", "-i", "testsrc2=size=\(size.width)x\(size.height):rate=24000/1001"]
        let sound = source.map { ["-i", $0.path] } ?? ["-f", "lavfi", "-i", "sine=frequency=300:beep_factor=4:sample_rate=16000"]
        try ffmpeg(video + ["-t", String(seconds), "-an", "-c:v", "mpeg4", "-bf", "1", "-g", "24", "-q:v", "4", "-flags", "+bitexact", "-f", "m4v"], output: m4v)
        try ffmpeg(sound + ["-t", String(seconds), "-vn", "-ar", "16000", "-ac", "1", "-f", "s16le", "-c:a", "pcm_s16le"], output: pcm)
        let stream = [UInt8](try Data(contentsOf: m4v)), audio = [UInt8](try Data(contentsOf: pcm))

        // Split the elementary stream into VOPs (start code 00 00 01 B6), each with the headers
        // before it (FFmpeg repeats VOS, VO, VOL and GOV headers before every I-VOP); the DivX user
        // data that announces packing goes into the first.
        var starts: [Int] = []
        var headersAt: Int?
        var i = 0
        while i + 3 < stream.count {
            guard stream[i] == 0, stream[i + 1] == 0, stream[i + 2] == 1 else { i += 1; continue }
            if stream[i + 3] == 0xB6 { starts.append(headersAt ?? i); headersAt = nil } else if headersAt == nil { headersAt = i }
            i += 4
        }
        guard !starts.isEmpty else { throw Failure(description: "no VOP in the MPEG-4 stream") }
        var vops: [[UInt8]] = zip(starts, starts.dropFirst() + [stream.count]).map { Array(stream[$0..<$1]) }
        let userData: [UInt8] = [0, 0, 1, 0xB2] + Array("DivX503b1393p".utf8)
        let firstVOP = vops[0].indices.first { vops[0][$0] == 0 && vops[0][$0 + 1] == 0 && vops[0][$0 + 2] == 1 && vops[0][$0 + 3] == 0xB6 }!
        vops[0].insert(contentsOf: userData, at: firstVOP)
        // vop_coding_type: the two bits after the start code (0 I, 1 P, 2 B); the first VOP is the I-frame.
        func codingType(_ vop: [UInt8]) -> UInt8 {
            var k = 0
            while !(vop[k] == 0 && vop[k + 1] == 0 && vop[k + 2] == 1 && vop[k + 3] == 0xB6) { k += 1 }
            return vop[k + 4] >> 6
        }
        let types = vops.map(codingType)
        // N-VOP: P, modulo_time_base 0, marker, 15-bit increment 0, marker, vop_coded 0, stuffing 011.
        let nvop: [UInt8] = [0, 0, 1, 0xB6, 0b0101_0000, 0b0000_0000, 0b0001_0011]

        // Decode order I P B P B …: each B joins the chunk before it, an N-VOP takes its place.
        var chunks: [(data: [UInt8], key: Bool)] = []
        for (n, vop) in vops.enumerated() {
            if types[n] == 2, let last = chunks.popLast() {
                chunks.append((last.data + vop, last.key))
                chunks.append((nvop, false))
            } else {
                chunks.append((vop, types[n] == 0))
            }
        }
        guard types.contains(2) else { throw Failure(description: "the encoder wrote no B-frame to pack") }

        // The AVI: header list, interleaved movi (video chunk, then its share of the audio), idx1.
        var out = Data()
        func u32(_ v: Int, into d: inout Data) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: Int, into d: inout Data) { withUnsafeBytes(of: UInt16(truncatingIfNeeded: v).littleEndian) { d.append(contentsOf: $0) } }
        func fourcc(_ s: String, into d: inout Data) { d.append(contentsOf: Array(s.utf8)) }
        func chunk(_ id: String, _ body: Data) -> Data {
            var d = Data(); fourcc(id, into: &d); u32(body.count, into: &d); d.append(body)
            if body.count % 2 == 1 { d.append(0) }
            return d
        }
        func list(_ type: String, _ body: Data) -> Data {
            var inner = Data(); fourcc(type, into: &inner); inner.append(body)
            return chunk("LIST", inner)
        }
        let frames = chunks.count
        let samplesPerChunk = Int((Double(16_000) * 1001 / 24000).rounded(.up))
        let maxVideo = chunks.map(\.data.count).max() ?? 0

        var avih = Data()
        for v in [41_708, 0, 0, 0x10, frames, 0, 2, maxVideo, size.width, size.height, 0, 0, 0, 0] { u32(v, into: &avih) }
        var vstrh = Data()
        fourcc("vids", into: &vstrh); fourcc("XVID", into: &vstrh)
        for v in [0, 0, 0, 1001, 24000, 0, frames, maxVideo, -1, 0] { u32(v, into: &vstrh) }
        for v in [0, 0, size.width, size.height] { u16(v, into: &vstrh) }
        var vstrf = Data()
        for v in [40, size.width, size.height] { u32(v, into: &vstrf) }
        u16(1, into: &vstrf); u16(24, into: &vstrf); fourcc("XVID", into: &vstrf)
        for v in [size.width * size.height * 3, 0, 0, 0, 0] { u32(v, into: &vstrf) }
        var astrh = Data()
        fourcc("auds", into: &astrh); u32(0, into: &astrh)
        for v in [0, 0, 0, 2, 32_000, 0, audio.count / 2, samplesPerChunk * 2, -1, 2] { u32(v, into: &astrh) }
        for v in [0, 0, 0, 0] { u16(v, into: &astrh) }
        var astrf = Data()
        u16(1, into: &astrf); u16(1, into: &astrf); u32(16_000, into: &astrf); u32(32_000, into: &astrf); u16(2, into: &astrf); u16(16, into: &astrf); u16(0, into: &astrf)
        let hdrl = list("hdrl", chunk("avih", avih) + list("strl", chunk("strh", vstrh) + chunk("strf", vstrf))
                                  + list("strl", chunk("strh", astrh) + chunk("strf", astrf)))

        var movi = Data(), idx1 = Data()
        fourcc("movi", into: &movi)
        func add(_ id: String, _ body: [UInt8], key: Bool) {
            fourcc(id, into: &idx1); u32(key ? 0x10 : 0, into: &idx1); u32(movi.count, into: &idx1); u32(body.count, into: &idx1)
            movi.append(chunk(id, Data(body)))
        }
        var audioAt = 0
        for (n, c) in chunks.enumerated() {
            add("00dc", c.data, key: c.key)
            let end = n == chunks.count - 1 ? audio.count : min(audio.count, audioAt + samplesPerChunk * 2)
            if end > audioAt { add("01wb", Array(audio[audioAt..<end]), key: true); audioAt = end }
        }
        var riff = Data()
        fourcc("AVI ", into: &riff)
        riff.append(hdrl)
        riff.append(chunk("LIST", movi))
        riff.append(chunk("idx1", idx1))
        out.append(chunk("RIFF", riff))
        try out.write(to: url)
    }
}
