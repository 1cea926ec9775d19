import Dispatch
import Foundation
import PipelineCore

/// SIGINT/SIGTERM/SIGHUP: the first stops new work and lets items in flight finish; the second
/// exits at once (safe: every committed result is durable and temporaries are removed by the next
/// run). SIGHUP (a closed terminal, `nohup`-less cron sessions) drains like SIGTERM for a one-shot
/// `run`; the worker daemon will give it the reload meaning.
enum SignalHandling {
    static func install(_ cancellation: CancellationFlag, quiet: Bool, signals: [Int32] = [SIGINT, SIGTERM, SIGHUP],
                        message: String = "stopping after the items in flight") -> [DispatchSourceSignal] {
        signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if cancellation.isCancelled { exit(ExitStatus.interrupted) }
                cancellation.cancel()
                if !quiet {
                    Console.error("\npipelined: \(message) (signal again to stop now)\n")
                }
            }
            source.resume()
            return source
        }
    }
}
