import Foundation
import PipelineTestSupport

/// The `pipelined` executable SwiftPM built beside this test bundle.
enum CLI {
    static var executable: URL {
        get throws { try Fixtures.builtExecutable("pipelined") }
    }

    @discardableResult
    static func run(_ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try Fixtures.run(executable.path, arguments, environment: environment)
        return (r.status, String(decoding: r.stdout, as: UTF8.self), r.stderr)
    }

    /// Starts `pipelined` without waiting for it.
    static func start(_ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = try executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}
