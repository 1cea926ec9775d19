// Talking-head sample inputs for scripts/demo.sh: a face photo whose mouth opens with the loudness
// of speech, on a 1280×720 canvas, with the audio shifted by known offsets.
//
//   SampleInputs PHOTO.png SPEECH.f32 OUTDIR
//   SampleInputs --talking N OUTDIR      (N 10 s clips of the sync tests' tuning family, in sync;
//                                         the first-publish benchmark's inputs)
//
// PHOTO is scikit-image's 512×512 astronaut (the mouth geometry is that photo's); SPEECH is 16 kHz
// mono float32 little-endian samples (the demo makes it with espeak-ng and ffmpeg).
import Foundation
import PipelineCore
import PipelineTestSupport

let arguments = CommandLine.arguments
if arguments.count == 4, arguments[1] == "--talking", let count = Int(arguments[2]) {
    let out = URL(fileURLWithPath: arguments[3])
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    for index in 0..<count {
        let url = out.appendingPathComponent(String(format: "talking_%02d.mp4", index))
        if FileManager.default.fileExists(atPath: url.path) { continue }
        try SyncFamilies.write(SyncFamilies.tuning, index: index, offset: 0, frames: 250, to: url, seed: 1)
        print("wrote \(url.path)")
    }
    exit(0)
}
guard arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: SampleInputs PHOTO.png SPEECH.f32 OUTDIR\n".utf8))
    exit(64)
}
let photo = try ClipFrames.read(arguments[1], indices: [0])[0]!
guard photo.width == 512, photo.height == 512 else {
    FileHandle.standardError.write(Data("SampleInputs: \(arguments[1]) is \(photo.width)×\(photo.height); the 512×512 astronaut is expected\n".utf8))
    exit(65)
}
let raw = try Data(contentsOf: URL(fileURLWithPath: arguments[2]))
let speech = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
let out = URL(fileURLWithPath: arguments[3])
try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
let frames = min(200, speech.count / 640 - 12)
// In sync; audio 3 frames early (fixed when published); audio 10 frames late (beyond the ±6 kept).
for (name, offset) in [("talk_in_sync.mp4", 0), ("talk_audio_early.mp4", 3), ("talk_audio_late.mp4", -10)] {
    let url = out.appendingPathComponent(name)
    if FileManager.default.fileExists(atPath: url.path) { continue }
    try TalkingClips.write(url, frames: frames, offset: offset, photo: photo, speech: speech, canvas: (1280, 720), scale: 2.6,
                           crf: 20, preset: "veryfast")
    print("wrote \(url.path) (\(frames) frames, audio offset \(offset))")
}
