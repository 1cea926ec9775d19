// swift-tools-version: 6.0
// Layers run bottom to top: C adapters, core libraries, stages, the CLI.
import PackageDescription

let package = Package(
    name: "pipelined",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pipelined", targets: ["pipelined"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        // Already built for postgres-nio; the metrics endpoint uses its HTTP/1 codec.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // MARK: C adapters

        /** FFmpeg's libraries from the system (pkg-config), plus a few inline helpers for macros Swift cannot import. */
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat libavcodec libavutil libswresample libswscale",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswresample-dev", "libswscale-dev"])]
        ),

        /** Keeps FFmpeg's last error log line per thread, so errors can quote FFmpeg's explanation. */
        .target(name: "CFFmpegLog", dependencies: ["CFFmpeg"]),

        /** OpenCV 4 from the system (pkg-config opencv4): flags and libraries for CVision only. */
        .systemLibrary(name: "COpenCV", pkgConfig: "opencv4", providers: [.apt(["libopencv-dev"])]),
        /** C API over OpenCV (warps, resizes) and Debian's dlib (HOG face detector, 68-point landmarks;
            headers in /usr/include; linked by name because dlib-1.pc lists absolute paths SwiftPM refuses). */
        .target(
            name: "CVision", dependencies: ["COpenCV"],
            // Always optimised: dlib is header-only templates, and at -O0 its model loading and landmarking
            // would be many times slower in debug builds and tests.
            cxxSettings: [.unsafeFlags(["-std=c++17", "-O2"])],
            linkerSettings: [.linkedLibrary("dlib"), .linkedLibrary("lapack"), .linkedLibrary("blas")]
        ),

        /** statfs(2)'s filesystem type, which Glibc's Swift module does not export (the store checks where SQLite lives). */
        .target(name: "CFileSystem"),

        /** The versioned C ABI of the torch backend (backend/torch/, loaded at run time): header only. */
        .target(name: "CTorchShim"),

        // MARK: Core libraries

        /** Engine (scheduling, leases, fingerprints), Store (SQLite), Config, Media (owning FFmpeg wrappers). */
        .target(
            name: "PipelineCore",
            dependencies: [
                "CFFmpeg", "CFFmpegLog", "CVision", "CFileSystem",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),

        /** The ledger on PostgreSQL (postgres-nio, driven through its EventLoopFuture API so that callers
            block plain threads): pooled connections, transactions retried across server restarts, the
            PostgreSQL schema's migrations, session advisory locks. */
        .target(
            name: "PostgresLedger",
            dependencies: [
                "PipelineCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        /** A worker's Prometheus metrics (swift-prometheus) from the engine's progress events, served
            on `--metrics-port` over SwiftNIO's HTTP/1 codec. */
        .target(
            name: "WorkerMetrics",
            dependencies: [
                "PipelineCore",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        // MARK: Stages

        /** One file per pipeline stage; where PipelineCore and Inference meet. */
        .target(name: "Stages", dependencies: ["PipelineCore", "Inference"]),

        /** Model code shared by the pipeline, `train` and `infer`: the torch backend's loading and
            tensors (Torch/), safetensors and strict loading (Weights/); layers and models follow. */
        .target(name: "Inference", dependencies: ["CTorchShim"]),

        // MARK: Executables

        /** The CLI: argument parsing only; every command calls one library entry point. */
        .executableTarget(
            name: "pipelined",
            dependencies: [
                "Stages", "PipelineCore", "Inference", "PostgresLedger", "WorkerMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        /** Stages 1+2 cost against a plain `ffmpeg -f null` decode of the same files. */
        .executableTarget(name: "ScanBenchmark", dependencies: ["Stages", "PipelineCore"], path: "Benchmarks/ScanBenchmark"),
        /** Stage 5 aligned frames per second and where the time goes, on generated 720p face clips. */
        .executableTarget(name: "AlignBenchmark", dependencies: ["Stages", "PipelineCore", "PipelineTestSupport"], path: "Benchmarks/AlignBenchmark"),
        /** Model parity against golden/ on any device; links Inference only (carried to the GPU machine). */
        .executableTarget(name: "InferenceCheck", dependencies: ["Inference"], path: "Benchmarks/InferenceCheck"),
        /** Load on the ledger from many processes (the load test and Benchmarks/ledger-load.sh). */
        .executableTarget(name: "LedgerLoad", dependencies: ["PipelineCore", "PostgresLedger"], path: "Benchmarks/LedgerLoad"),
        /** The demo's talking-head inputs (a photo whose mouth follows speech), for scripts/demo.sh. */
        .executableTarget(name: "SampleInputs", dependencies: ["PipelineCore", "PipelineTestSupport"], path: "Benchmarks/SampleInputs"),

        // MARK: Tests

        .target(name: "PipelineTestSupport", dependencies: ["PipelineCore", "Inference"], path: "Tests/PipelineTestSupport"),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "PipelineCore", "PipelineTestSupport"]),
        /** The PostgreSQL ledger against a real server (PipelineTestSupport's PostgresServer). */
        .testTarget(name: "LedgerTests", dependencies: ["PostgresLedger", "PipelineCore", "PipelineTestSupport", "LedgerLoad"]),
        .testTarget(name: "PipelineCoreTests", dependencies: ["PipelineCore", "PipelineTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "StagesTests", dependencies: ["Stages", "PipelineCore", "PipelineTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "pipelinedTests", dependencies: [
            "pipelined", "PipelineCore", "Inference", "PipelineTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
        ]),
    ]
)
