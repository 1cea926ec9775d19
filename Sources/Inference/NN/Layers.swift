#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// A layer or a chain of layers: tensor in, tensor out.
public protocol Module: Sendable {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// `torch.nn.Conv1d/2d/3d` (rank = kernel.count); weight `[out, in/groups, k…]`.
public struct Conv: Module {
    public let weight: Tensor, bias: Tensor?
    public let stride: [Int], padding: [Int], groups: Int

    public init(_ w: WeightSource, _ path: WeightPath, in inChannels: Int, out: Int, kernel: [Int], stride: [Int]? = nil, padding: [Int]? = nil,
                groups: Int = 1, bias: Bool = true) throws {
        let fanIn = inChannels / groups * kernel.reduce(1, *)
        weight = try w.tensor(path("weight"), shape: [out, inChannels / groups] + kernel, role: .weight(fanIn: fanIn))
        self.bias = bias ? try w.tensor(path("bias"), shape: [out], role: .bias(fanIn: fanIn)) : nil
        self.stride = stride ?? kernel.map { _ in 1 }
        self.padding = padding ?? kernel.map { _ in 0 }
        self.groups = groups
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Functional.convolution(x, weight: weight, bias: bias, stride: stride, padding: padding, groups: groups)
    }
}

/// `torch.nn.BatchNorm1d/2d/3d` in evaluation mode (running statistics; `num_batches_tracked` unused).
public struct BatchNorm: Module {
    public let weight: Tensor, bias: Tensor, mean: Tensor, variance: Tensor
    public let eps: Double

    public init(_ w: WeightSource, _ path: WeightPath, features: Int, eps: Double = 1e-5) throws {
        weight = try w.tensor(path("weight"), shape: [features], role: .scale)
        bias = try w.tensor(path("bias"), shape: [features], role: .shift)
        mean = try w.tensor(path("running_mean"), shape: [features], role: .runningMean)
        variance = try w.tensor(path("running_var"), shape: [features], role: .runningVariance)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Functional.batchNorm(x, mean: mean, variance: variance, weight: weight, bias: bias, eps: eps)
    }
}

/// `torch.nn.Linear`; weight `[out, in]`.
public struct Linear: Module {
    public let weight: Tensor, bias: Tensor?

    public init(_ w: WeightSource, _ path: WeightPath, in inFeatures: Int, out: Int, bias: Bool = true) throws {
        weight = try w.tensor(path("weight"), shape: [out, inFeatures], role: .weight(fanIn: inFeatures))
        self.bias = bias ? try w.tensor(path("bias"), shape: [out], role: .bias(fanIn: inFeatures)) : nil
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try Functional.linear(x, weight: weight, bias: bias) }
}

public struct ReLU: Module {
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.relu() }
}

/// An element-wise activation as a layer (`nn.SiLU`, `nn.GELU`, `nn.Sigmoid`, …).
public struct Activate: Module {
    public let kind: Activation
    public init(_ kind: Activation) { self.kind = kind }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.activation(kind) }
}

/// `torch.nn.GroupNorm(groups, channels, eps)` with its affine parameters.
public struct GroupNorm: Module {
    public let weight: Tensor, bias: Tensor
    public let groups: Int, eps: Double

    public init(_ w: WeightSource, _ path: WeightPath, groups: Int, channels: Int, eps: Double) throws {
        precondition(channels % groups == 0, "GroupNorm: \(channels) channels do not split into \(groups) groups")
        weight = try w.tensor(path("weight"), shape: [channels], role: .scale)
        bias = try w.tensor(path("bias"), shape: [channels], role: .shift)
        self.groups = groups; self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try Functional.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps) }

    /// (B·F, C, H, W) frames, statistics pooled over each item's `frames` frames (1: per frame), then SiLU if asked.
    public func callAsFunction(frames x: Tensor, _ frames: Int, silu: Bool = false) throws -> Tensor {
        try Functional.groupNorm(frames: x, frames: frames, groups: groups, weight: weight, bias: bias, eps: eps, silu: silu)
    }
}

/// `torch.nn.LayerNorm(features, eps)` over the last dimension.
public struct LayerNorm: Module {
    public let weight: Tensor, bias: Tensor
    public let eps: Double

    public init(_ w: WeightSource, _ path: WeightPath, features: Int, eps: Double = 1e-5) throws {
        weight = try w.tensor(path("weight"), shape: [features], role: .scale)
        bias = try w.tensor(path("bias"), shape: [features], role: .shift)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try Functional.layerNorm(x, weight: weight, bias: bias, eps: eps) }

    /// x (…, F, L, C) normalised, then `table` row f (F·C values) added to the rows of frame f.
    public func callAsFunction(_ x: Tensor, addingPerFrame table: Tensor) throws -> Tensor {
        try Functional.layerNorm(x, weight: weight, bias: bias, eps: eps, addingPerFrame: table)
    }
}

/// `torch.nn.AvgPool1d/2d/3d` (floor mode, padding counted).
public struct AvgPool: Module {
    public let kernel: [Int], stride: [Int]
    public init(kernel: [Int], stride: [Int]? = nil) { self.kernel = kernel; self.stride = stride ?? kernel }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try Functional.avgPool(x, kernel: kernel, stride: stride) }
}

/// `torch.nn.MaxPool1d/2d/3d` (floor mode; padding counts as −∞).
public struct MaxPool: Module {
    public let kernel: [Int], stride: [Int], padding: [Int]
    public init(kernel: [Int], stride: [Int]? = nil, padding: [Int]? = nil) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding ?? kernel.map { _ in 0 }
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try Functional.maxPool(x, kernel: kernel, stride: stride, padding: padding) }
}

/// `torch.nn.Sequential`: layers numbered as PyTorch numbers them, parameterless ones included, so
/// that `netcnnaud.1.running_mean` is the `running_mean` of element 1. Build it with one closure
/// per element receiving that element's path.
public struct Sequential: Module {
    public let layers: [any Module]

    public init(_ path: WeightPath, _ makers: [(WeightPath) throws -> any Module]) throws {
        layers = try makers.enumerated().map { try $0.element(path[$0.offset]) }
    }

    /// Layers made elsewhere (their weight paths chosen by their maker).
    public init(layers: [any Module]) { self.layers = layers }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try layers.reduce(x) { try $1($0) } }

    /// The output of every element (for comparing intermediate activations).
    public func activations(_ x: Tensor) throws -> [Tensor] {
        var out: [Tensor] = []
        var current = x
        for layer in layers { current = try layer(current); out.append(current) }
        return out
    }
}

/// A 2-D convolution of (B·F, C, H, W) frames. With `channelsLast` its weight is stored channels-last,
/// the layout cuDNN's fastest kernels read and write (activations in that layout are then never converted).
public struct FrameConv: Module {
    public let weight: Tensor, bias: Tensor?
    public let stride: Int, padding: Int

    public init(_ w: WeightSource, _ path: WeightPath, in inChannels: Int, out: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                channelsLast: Bool = false) throws {
        let conv = try Conv(w, path, in: inChannels, out: out, kernel: [kernel, kernel])
        weight = channelsLast && !w.isShapesOnly ? try conv.weight.contiguous(channelsLast: true) : conv.weight
        bias = conv.bias
        self.stride = stride; self.padding = padding
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Functional.convolution(x, weight: weight, bias: bias, stride: [stride, stride], padding: [padding, padding])
    }

    /// The convolution with `biasShift` (one value per output channel) added to its bias.
    public func callAsFunction(_ x: Tensor, biasShift: Tensor) throws -> Tensor {
        try Functional.convolution(x, weight: weight, bias: bias.map { try $0 + biasShift } ?? biasShift, stride: [stride, stride], padding: [padding, padding])
    }
}
