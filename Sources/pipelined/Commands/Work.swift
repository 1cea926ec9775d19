import ArgumentParser
import Foundation
import PipelineCore
import PostgresLedger
import Stages
import WorkerMetrics

extension Pipelined {
    struct Work: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The long-running worker: claim and run work from the ledger until told to stop; many hosts may run one each against a PostgreSQL ledger.",
            discussion: """
            Started by the cluster's scheduler (Slurm, systemd, Kubernetes), one per host. It claims work
            of any stage whose input is ready, runs CPU stages on --slots lanes and model-backed stages
            (sync.method syncnet_v2/stable_syncnet, quality.method hyperiqa) on one lane per device, notices
            new and changed inputs (inotify, and a full rescan every --rescan seconds: inotify does not
            see other hosts' writes on a shared filesystem), and takes a file only once its size and mtime
            have stood still for --settle seconds. SIGTERM or SIGINT: it stops claiming, finishes what it
            holds within --grace seconds, gives back the rest, writes the dataset index and exits 0; a
            second signal exits at once (nothing committed is lost). SIGHUP is ignored (reloading the
            configuration is not supported yet: restart the worker).
            With a SQLite database it is the only process on that database and output directory, as a
            `run` is: a `run` from cron meanwhile exits with code 75.
            """)

        @Option(name: .long, help: "Folder of raw videos (searched recursively; never modified).", transform: { URL(fileURLWithPath: $0) })
        var inputDir: URL

        @OptionGroup var store: StoreOptions

        @Option(name: .long, help: "pipeline.conf (TOML). Default: built-in defaults.", transform: { URL(fileURLWithPath: $0) })
        var config: URL?

        @Option(name: .long, help: "Claim only these stages (comma-separated: \(StageRegistry.order.joined(separator: ","))). Default: all.")
        var stages: String?

        @Option(name: .long, help: "Lanes for the CPU stages. Default: pipeline.conf's run.jobs, else the number of cores.")
        var slots: Int?

        @Option(name: .long, help: "Devices for the model-backed stages, one model replica and lane each: cuda:0,cuda:1 or cpu. Default: every visible GPU, else cpu (only when a model-backed method is configured).")
        var devices: String?

        @Option(name: .long, help: "Serve Prometheus metrics on this port (GET /metrics).")
        var metricsPort: Int?

        @Option(name: .long, help: "Address the metrics are served on.")
        var metricsAddress = "0.0.0.0"

        @Flag(name: .long, help: "Do what can be done now and exit, as `run` does (same exit codes).")
        var once = false

        @Option(name: .long, help: "Seconds items in flight may take to finish after SIGTERM before they are given back.")
        var grace: Double = 60

        @Option(name: .long, help: "Seconds a new or changed input's size and mtime must stand still before it is taken.")
        var settle: Double = 10

        @Option(name: .long, help: "Seconds between full rescans of the input folder.")
        var rescan: Double = 60

        @Option(name: .long, help: "Seconds a claim stays valid without a heartbeat (beats every sixth of it); a worker paused or cut off longer loses its items to others. Use the same on every worker of a ledger.")
        var lease: Double = 120

        @Flag(name: .long, help: "Print only errors.")
        var quiet = false

        var claimedStages: Set<String>? {
            stages.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        }

        func validate() throws {
            if let claimedStages {
                let unknown = claimedStages.subtracting(StageRegistry.order)
                if !unknown.isEmpty || claimedStages.isEmpty {
                    throw ValidationError("unknown stage(s) \(unknown.sorted().joined(separator: ", ")) for --stages; stages: \(StageRegistry.order.joined(separator: ", "))")
                }
            }
            if let slots, !(1...1024).contains(slots) { throw ValidationError("--slots must be 1…1024, not \(slots)") }
            if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be 0…65535, not \(metricsPort)") }
            for (name, value) in [("--grace", grace), ("--settle", settle), ("--rescan", rescan)] where !(value.isFinite && value >= 0) {
                throw ValidationError("\(name) must be a number of seconds ≥ 0")
            }
            if rescan < 1 { throw ValidationError("--rescan must be at least 1 second") }
            if !(lease.isFinite && lease >= 1) { throw ValidationError("--lease must be at least 1 second") }
        }

        func run() async throws {
            Lease.configure(seconds: lease)
            let cancellation = CancellationFlag()
            let signals = Self.installSignals(cancellation, quiet: quiet, grace: grace)
            // A worker queues behind a `run` that holds a SQLite database, instead of giving up.
            let session = try WorkSession.open(inputDir: inputDir, store: store, config: config, device: nil,
                                               waitSeconds: .infinity, quiet: quiet)
            let configuration = session.configuration
            let planned = StageRegistry.stages(for: configuration)
            let usesDevices = planned.contains { $0.usesDevice && (claimedStages?.contains($0.id) ?? true) }
            var deviceList: [String] = []
            if usesDevices {
                do {
                    if let devices {
                        deviceList = devices.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    } else if configuration.inference.device == "auto" {
                        deviceList = try ModelMethods.visibleDevices()
                    } else {
                        deviceList = [configuration.inference.device]
                    }
                    for device in deviceList { try ModelMethods.validateDevice(device) }
                } catch { throw fail(error) }
            }

            var reporters: [any ProgressReporter] = []
            if !quiet { reporters.append(LineReporter()) }
            var server: MetricsServer?
            if let metricsPort {
                let metrics = WorkerMetrics(stages: planned.map(\.id), devices: deviceList, deviceMemory: { ModelMethods.deviceMemory($0) })
                do { server = try MetricsServer(host: metricsAddress, port: metricsPort, metrics: metrics) } catch { throw fail(error) }
                reporters.append(metrics)
            }
            defer { server?.close() }
            let reporter = FanOutReporter(reporters)

            let slotCount = slots ?? (configuration.run.jobs > 0 ? configuration.run.jobs : ProcessInfo.processInfo.activeProcessorCount)
            var options = EngineOptions(inputDirectory: inputDir, outputDirectory: session.outputDirectory, jobs: slotCount,
                                        traceFile: ProcessInfo.processInfo.environment["PIPELINED_TRACE"], version: Pipelined.version,
                                        maxGoneShare: configuration.run.maxGoneShare)
            options.claimedStages = claimedStages
            options.devices = deviceList
            // The engine needs itself to refresh the index (it collects the outputs); the closure reads it from this box.
            let engineBox = EngineBox()
            if !once {
                options.daemon = DaemonOptions(rescanInterval: rescan, settle: settle, grace: grace, watcher: InputWatcher(root: inputDir)) {
                    guard let engine = engineBox.engine else { return }
                    // Called inside the engine's exclusive section already.
                    _ = try DatasetIndex.write(store: session.ledger, configuration: configuration, outputDirectory: session.outputDirectory)
                    _ = try engine.collectOutputs(prune: false)
                }
            }
            let engine = session.engine(options: options, reporter: reporter, cancellation: cancellation)
            engineBox.engine = engine
            if !quiet {
                let ledgerName = (session.ledger as? PostgresLedgerDatabase)?.maskedURL ?? store.databasePath(outputDirectory: session.outputDirectory)
                Console.error("pipelined work: ledger \(ledgerName)"
                              + ", \(slotCount) slot(s)" + (deviceList.isEmpty ? "" : ", devices \(deviceList.joined(separator: ","))")
                              + (server.map { ", metrics on \(metricsAddress):\($0.port)" } ?? "")
                              + (once ? ", once" : ", until SIGTERM") + "\n")
            }
            var summary: RunSummary
            do {
                summary = try await engine.run()
                let (clips, _) = try session.refreshIndex(engine: engine, prune: false)
                if !quiet { Console.error("dataset: \(clips) clip(s) in \(session.outputDirectory.appendingPathComponent(DatasetIndex.fileslist).path)\n") }
                let failing = try session.ledger.failedItems(maxAttempts: configuration.run.maxAttempts)
                summary.failing = RunSummary.Failing(retrying: failing.retrying, final: failing.final)
            } catch { throw fail(error) }
            withExtendedLifetime((session, signals)) {}
            if !quiet { Console.error("pipelined work: run #\(summary.runId) \(once ? "done" : "stopped")\n") }
            // A daemon that was told to stop has done what it should: exit 0. `--once` reports as `run` does.
            guard once else { return }
            if summary.interrupted { throw ExitCode(ExitStatus.interrupted) }
            if let failing = summary.failing, failing.retrying + failing.final > 0 {
                throw ExitCode(failing.final > 0 ? ExitStatus.itemsFailedForGood : ExitStatus.itemsFailed)
            }
        }

        /// SIGTERM/SIGINT drain (a second one exits at once); SIGHUP is ignored with a note.
        static func installSignals(_ cancellation: CancellationFlag, quiet: Bool, grace: Double) -> [DispatchSourceSignal] {
            var sources = SignalHandling.install(cancellation, quiet: quiet, signals: [SIGINT, SIGTERM],
                                                 message: "stopping: no new claims; items in flight get \(Int(grace)) s to finish, then are given back")
            signal(SIGHUP, SIG_IGN)
            let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            hangUp.setEventHandler {
                if !quiet { Console.error("pipelined work: SIGHUP ignored: reloading pipeline.conf is not supported yet; restart the worker to apply changes\n") }
            }
            hangUp.resume()
            sources.append(hangUp)
            return sources
        }
    }
}

/// Set once, after the engine exists, for a closure the engine itself calls.
private final class EngineBox: @unchecked Sendable {
    // @unchecked: written once before the engine runs; read from its loop afterwards.
    var engine: Engine?
}

/// Sends every event to several reporters (the log and the metrics).
struct FanOutReporter: ProgressReporter {
    let reporters: [any ProgressReporter]
    init(_ reporters: [any ProgressReporter]) { self.reporters = reporters }
    func report(_ event: ProgressEvent) { for reporter in reporters { reporter.report(event) } }
}
