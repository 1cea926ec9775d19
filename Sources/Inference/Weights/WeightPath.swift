/// A state-dict key under construction: layers receive the path of their module and name their own
/// parameters, so each name is written once, where the layer is created (`netcnnaud.1.running_mean`).
public struct WeightPath: Sendable, Hashable, CustomStringConvertible {
    public let components: [String]

    public init(_ components: [String] = []) { self.components = components }

    /// The path of a named child module or parameter.
    public func callAsFunction(_ child: String) -> WeightPath { WeightPath(components + [child]) }
    /// The path of a positional child (a `Sequential`'s index, as PyTorch numbers them).
    public subscript(index: Int) -> WeightPath { WeightPath(components + [String(index)]) }

    public var key: String { components.joined(separator: ".") }
    public var description: String { key }
}
