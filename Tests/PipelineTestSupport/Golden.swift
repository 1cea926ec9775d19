import Foundation
@_exported import Inference

/// The reference tensors in `../shared/golden` (see its README). Tests that use them fail, rather
/// than skip, when the folder is missing: CI always has it beside the clone.
public enum Golden {
    public static var directory: URL {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            for candidate in [root.appendingPathComponent("../shared/golden"), root.appendingPathComponent("shared/golden")] {
                if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("README.md").path) { return candidate.standardized }
            }
            throw Fixtures.Failure(description: "golden reference data not found at \(root.path)/../shared/golden")
        }
    }
}

/// The golden files are safetensors; the reader is the Inference module's own.
public typealias SafeTensorsFile = SafeTensors
