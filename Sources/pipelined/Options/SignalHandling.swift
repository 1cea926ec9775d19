import Dispatch
import Foundation
import PipelineCore

/// SIGINT/SIGTERM: the first stops new work and lets items in flight finish; the second exits at
/// once (safe: every committed result is durable and temporaries are removed by the next run).
enum SignalHandling {
    static func install(_ cancellation: CancellationFlag, quiet: Bool,
                        message: String = "stopping after the items in flight") -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if cancellation.isCancelled { exit(ExitStatus.interrupted) }
                cancellation.cancel()
                if !quiet {
                    FileHandle.standardError.write(Data("\npipelined: \(message) (signal again to stop now)\n".utf8))
                }
            }
            source.resume()
            return source
        }
    }
}
