import Foundation

/// Generates media fixtures with Debian's `ffmpeg` (lavfi test sources), so no media is committed.
/// The commands are the documentation of what each fixture exercises.
public enum Fixtures {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// A fresh empty directory under the system temporary directory.
    public static func temporaryDirectory(_ name: String = "pipelined-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs a program and returns its standard output; throws with its stderr when it fails.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, stdout: Data, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/env")
        process.arguments = program.hasPrefix("/") ? arguments : [program] + arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        // stderr goes to a file so that a chatty program cannot fill a pipe nobody reads.
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = (try? Data(contentsOf: errURL)) ?? Data()
        return (process.terminationStatus, stdout, String(decoding: stderr, as: UTF8.self))
    }

    /// `ffmpeg -v error -y ARGS OUTPUT`.
    public static func ffmpeg(_ arguments: [String], output: URL) throws {
        let r = try run("ffmpeg", ["-nostdin", "-v", "error", "-y"] + arguments + [output.path])
        guard r.status == 0 else { throw Failure(description: "ffmpeg \(arguments.joined(separator: " ")) failed: \(r.stderr)") }
    }

    /// A talking-head stand-in: a moving test pattern with a tone.
    public static func video(_ url: URL, seconds: Double, size: String = "160x120", rate: String = "25",
                             sampleRate: Int = 16_000, channels: Int = 1, videoCodec: [String] = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
                             audioCodec: [String] = ["-c:a", "aac"], extra: [String] = []) throws {
        try ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=\(size):rate=\(rate)",
                    "-f", "lavfi", "-i", "sine=frequency=300:beep_factor=4:sample_rate=\(sampleRate)",
                    "-t", String(seconds), "-ac", String(channels)] + videoCodec + audioCodec
                    // Its own name in the metadata: two fixtures made alike are still different files
                    // (byte-identical inputs are rejected as duplicates by default).
                    + ["-metadata", "comment=fixture \(url.lastPathComponent)"] + extra, output: url)
    }

    /// The kinds of input stage 1 must classify, with the state each must end in.
    public struct Case: Sendable {
        public var file: String
        public var expectDone: Bool
        /// Substring of the rejection reason (nil when expected done).
        public var reason: String?
    }

    /// Writes every kind of input the issue lists into `directory` and returns the expectations.
    public static func makeInputZoo(in directory: URL, seconds: Double = 2) throws -> [Case] {
        func at(_ name: String) -> URL { directory.appendingPathComponent(name) }
        var cases: [Case] = []
        try video(at("cfr30_stereo44k.mp4"), seconds: seconds, rate: "30", sampleRate: 44_100, channels: 2)
        cases.append(Case(file: "cfr30_stereo44k.mp4", expectDone: true))
        try video(at("cfr25.mov"), seconds: seconds)
        cases.append(Case(file: "cfr25.mov", expectDone: true))
        try makeVariableFrameRate(at("vfr.mkv"), seconds: seconds)
        cases.append(Case(file: "vfr.mkv", expectDone: true))
        try rotated(at("portrait_rotated.mp4"), seconds: seconds, degrees: 90)
        cases.append(Case(file: "portrait_rotated.mp4", expectDone: true))
        try video(at("odd_size.avi"), seconds: seconds, size: "161x121", videoCodec: ["-c:v", "mjpeg", "-q:v", "5"], audioCodec: ["-c:a", "pcm_s16le"])
        cases.append(Case(file: "odd_size.avi", expectDone: true))
        try video(at("vp8.webm"), seconds: seconds, videoCodec: ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "200k"], audioCodec: ["-c:a", "libopus"])
        cases.append(Case(file: "vp8.webm", expectDone: true))
        try video(at("program.ts"), seconds: seconds, rate: "30000/1001")
        cases.append(Case(file: "program.ts", expectDone: true))
        try video(at("mpeg2.mpg"), seconds: seconds, videoCodec: ["-c:v", "mpeg2video"], audioCodec: ["-c:a", "mp2"], extra: ["-ar", "44100"])
        cases.append(Case(file: "mpeg2.mpg", expectDone: true))
        try video(at("flash.flv"), seconds: seconds, sampleRate: 44_100, videoCodec: ["-c:v", "flv1"], audioCodec: ["-c:a", "aac"])
        cases.append(Case(file: "flash.flv", expectDone: true))
        try video(at("mp4 without extension"), seconds: seconds, extra: ["-f", "mp4"])
        cases.append(Case(file: "mp4 without extension", expectDone: true))
        let odd = "it's \"quoted\" – ünïcödé 名前 $x.mp4"
        try video(at(odd), seconds: seconds)
        cases.append(Case(file: odd, expectDone: true))

        FileManager.default.createFile(atPath: at("zero.mp4").path, contents: Data())
        cases.append(Case(file: "zero.mp4", expectDone: false, reason: "empty file"))
        // Fixed noise (SplitMix64, seed 7): fresh noise each run would now and then probe as some text
        // subtitle format and be rejected for having no video stream instead (seen in CI).
        var state: UInt64 = 7
        let noise = (0..<(65_536 / 8)).flatMap { _ -> [UInt8] in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return (0..<8).map { UInt8(truncatingIfNeeded: z >> (8 * $0)) }
        }
        FileManager.default.createFile(atPath: at("random.mp4").path, contents: Data(noise))
        cases.append(Case(file: "random.mp4", expectDone: false, reason: "not a readable media container"))
        // moov at the end, cut in half: the container cannot be opened.
        try video(at("whole.tmpsrc"), seconds: seconds, extra: ["-f", "mp4"])
        let whole = try Data(contentsOf: at("whole.tmpsrc"))
        try whole.prefix(whole.count / 2).write(to: at("truncated_moov_last.mp4"))
        cases.append(Case(file: "truncated_moov_last.mp4", expectDone: false, reason: "moov atom not found"))
        // moov first (faststart), cut in half: opens, then breaks off.
        try video(at("faststart.tmpsrc"), seconds: seconds, extra: ["-movflags", "+faststart", "-f", "mp4"])
        let fast = try Data(contentsOf: at("faststart.tmpsrc"))
        try fast.prefix(fast.count / 2).write(to: at("truncated_faststart.mp4"))
        cases.append(Case(file: "truncated_faststart.mp4", expectDone: false, reason: "truncated"))
        try FileManager.default.removeItem(at: at("whole.tmpsrc"))
        try FileManager.default.removeItem(at: at("faststart.tmpsrc"))
        try ffmpeg(["-f", "lavfi", "-i", "sine=sample_rate=16000", "-t", String(seconds), "-c:a", "aac"], output: at("audio_only.m4a"))
        cases.append(Case(file: "audio_only.m4a", expectDone: false, reason: "no video stream"))
        try ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast"], output: at("video_only.mp4"))
        cases.append(Case(file: "video_only.mp4", expectDone: false, reason: "no audio stream"))
        try video(at("too_short.mp4"), seconds: 0.4)
        cases.append(Case(file: "too_short.mp4", expectDone: false, reason: "too short"))
        return cases
    }

    /// A phone-style file: the picture is stored sideways and a display matrix says to rotate it by
    /// `degrees` clockwise (written by a stream-copy remux; FFmpeg 5.1 sets it only there).
    public static func rotated(_ url: URL, seconds: Double, degrees: Int, rate: String = "25") throws {
        let plain = url.deletingLastPathComponent().appendingPathComponent(".unrotated-\(UUID().uuidString).mp4")
        try video(plain, seconds: seconds, size: "160x120", rate: rate)
        defer { try? FileManager.default.removeItem(at: plain) }
        try ffmpeg(["-i", plain.path, "-c", "copy", "-metadata:s:v:0", "rotate=\(degrees)", "-f", "mp4"], output: url)
    }

    /// Variable frame rate: a 30 fps pattern with irregular frames removed, timestamps kept.
    public static func makeVariableFrameRate(_ url: URL, seconds: Double) throws {
        try ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000",
                    "-t", String(seconds), "-vf", "select='lt(mod(n\\,7)\\,4)+eq(mod(n\\,11)\\,0)'", "-fps_mode", "vfr",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"], output: url)
    }

    /// An executable SwiftPM built beside the test bundle (`pipelined`, `LedgerLoad`).
    public static func builtExecutable(_ name: String) throws -> URL {
        let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent(),
                          URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        for dir in candidates {
            let url = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw Failure(description: "\(name) executable not found near \(candidates.map(\.path))")
    }

    /// SHA-256 of every file under `directory` (relative path → digest), to prove inputs untouched.
    public static func digests(of directory: URL) throws -> [String: String] {
        var result: [String: String] = [:]
        let root = directory.resolvingSymlinksInPath().path
        for case let url as URL in FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)! {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            let r = try run("sha256sum", [url.path])
            result[String(url.resolvingSymlinksInPath().path.dropFirst(root.count + 1))] = String(decoding: r.stdout, as: UTF8.self).split(separator: " ").first.map(String.init)
        }
        return result
    }
}
