import Foundation
import TOMLKit

/// Everything `pipeline.conf` can set. Defaults equal the LatentSync recipe unless a key says why
/// not; the repository's `pipeline.conf` documents each key with its default.
public struct PipelineConfiguration: Sendable, Codable, Equatable {
    public struct Run: Sendable, Codable, Equatable {
        /// Items processed at once; 0 = the number of cores.
        public var jobs = 0
        /// Tries per item before a failure is final (a process killed while working on an item counts).
        public var maxAttempts = 3
        /// Wait before retrying a failed item, doubled per attempt.
        public var retryBackoffSeconds = 30.0
    }
    public struct Broken: Sendable, Codable, Equatable {
        /// Shorter sources cannot yield a 5 s clip.
        public var minDurationSeconds = 5.0
        /// Damaged packets or frames per decoded packet above which a source is rejected.
        public var maxDecodeErrorRate = 0.01
    }
    public struct Normalize: Sendable, Codable, Equatable {
        public var fps = 25
        public var sampleRate = 16_000
        /// Write `resampled/<relative path>.mp4`; otherwise later stages read through the frame map.
        public var materialize = false
        public var crf = 18
        public var preset = "veryfast"
    }

    public var run = Run()
    public var broken = Broken()
    public var normalize = Normalize()

    public init() {}

    /// Reads a TOML document. Unknown sections or keys are errors (a typo must not silently fall
    /// back to a default), and so are values of the wrong type or out of range.
    public init(toml text: String, source: String = "pipeline.conf") throws {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw ConfigurationError.syntax(file: source, line: e.source.begin.line, message: e.description)
        }
        var reader = ConfigReader(root: table, source: source)
        run.jobs = try reader.int("run", "jobs", run.jobs, range: 0...1024)
        run.maxAttempts = try reader.int("run", "max_attempts", run.maxAttempts, range: 1...100)
        run.retryBackoffSeconds = try reader.double("run", "retry_backoff_seconds", run.retryBackoffSeconds, range: 0...86_400)
        broken.minDurationSeconds = try reader.double("broken", "min_duration_seconds", broken.minDurationSeconds, range: 0...86_400)
        broken.maxDecodeErrorRate = try reader.double("broken", "max_decode_error_rate", broken.maxDecodeErrorRate, range: 0...1)
        normalize.fps = try reader.int("normalize", "fps", normalize.fps, range: 1...240)
        normalize.sampleRate = try reader.int("normalize", "sample_rate", normalize.sampleRate, range: 8_000...192_000)
        normalize.materialize = try reader.bool("normalize", "materialize", normalize.materialize)
        normalize.crf = try reader.int("normalize", "crf", normalize.crf, range: 0...51)
        normalize.preset = try reader.string("normalize", "preset", normalize.preset,
                                             allowed: ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"])
        try reader.rejectUnknownKeys()
    }

    /// Loads `url`, or the defaults when `url` is nil.
    public static func load(_ url: URL?) throws -> PipelineConfiguration {
        guard let url else { return PipelineConfiguration() }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ConfigurationError.unreadable(file: url.path, message: error.localizedDescription)
        }
        return try PipelineConfiguration(toml: text, source: url.path)
    }
}

public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
    case syntax(file: String, line: Int, message: String)
    case unreadable(file: String, message: String)
    case unknownKey(file: String, key: String, known: [String])
    case wrongType(file: String, key: String, expected: String)
    case outOfRange(file: String, key: String, value: String, allowed: String)

    public var description: String {
        switch self {
        case let .syntax(file, line, message): "\(file):\(line): \(message)"
        case let .unreadable(file, message): "cannot read \(file): \(message)"
        case let .unknownKey(file, key, known): "\(file): unknown key \"\(key)\"; known keys: \(known.joined(separator: ", "))"
        case let .wrongType(file, key, expected): "\(file): \(key) must be \(expected)"
        case let .outOfRange(file, key, value, allowed): "\(file): \(key) = \(value) is outside \(allowed)"
        }
    }
}

/// Reads typed values from a TOML table and remembers which keys it was asked for.
private struct ConfigReader {
    let root: TOMLTable
    let source: String
    var known: [String] = []

    init(root: TOMLTable, source: String) { self.root = root; self.source = source }

    private mutating func value(_ section: String, _ key: String) throws -> TOMLValueConvertible? {
        known.append("\(section).\(key)")
        guard let sectionValue = root[section] else { return nil }
        guard let table = sectionValue.table else { throw ConfigurationError.wrongType(file: source, key: section, expected: "a table ([\(section)])") }
        return table[key]
    }

    mutating func int(_ s: String, _ k: String, _ d: Int, range: ClosedRange<Int>) throws -> Int {
        guard let v = try value(s, k) else { return d }
        guard let i = v.int else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "an integer") }
        guard range.contains(i) else { throw ConfigurationError.outOfRange(file: source, key: "\(s).\(k)", value: "\(i)", allowed: "\(range)") }
        return i
    }

    mutating func double(_ s: String, _ k: String, _ d: Double, range: ClosedRange<Double>) throws -> Double {
        guard let v = try value(s, k) else { return d }
        guard let x = v.double ?? v.int.map(Double.init) else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "a number") }
        guard range.contains(x) else { throw ConfigurationError.outOfRange(file: source, key: "\(s).\(k)", value: "\(x)", allowed: "\(range)") }
        return x
    }

    mutating func bool(_ s: String, _ k: String, _ d: Bool) throws -> Bool {
        guard let v = try value(s, k) else { return d }
        guard let b = v.bool else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "true or false") }
        return b
    }

    mutating func string(_ s: String, _ k: String, _ d: String, allowed: [String]) throws -> String {
        guard let v = try value(s, k) else { return d }
        guard let x = v.string else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "a string") }
        guard allowed.contains(x) else { throw ConfigurationError.outOfRange(file: source, key: "\(s).\(k)", value: x, allowed: allowed.joined(separator: "|")) }
        return x
    }

    func rejectUnknownKeys() throws {
        let sections = Set(known.map { String($0.split(separator: ".")[0]) })
        for section in root.keys {
            guard sections.contains(section) else { throw ConfigurationError.unknownKey(file: source, key: section, known: known) }
            guard let table = root[section]?.table else { continue }
            for key in table.keys where !known.contains("\(section).\(key)") {
                throw ConfigurationError.unknownKey(file: source, key: "\(section).\(key)", known: known.filter { $0.hasPrefix(section + ".") })
            }
        }
    }
}
