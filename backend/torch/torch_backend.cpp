// The torch backend: pd_torch.h's table over libtorch's C++ API. Thin on purpose: each entry
// converts handles, calls one ATen function and catches everything (no exception crosses the ABI).
#include "pd_torch.h"

#include <torch/torch.h>

#include <string>
#include <vector>

struct pd_tensor {
    at::Tensor value;
};

namespace {
thread_local std::string last_error;

template <typename F> int32_t guarded(F &&body) {
    try {
        last_error.clear();
        body();
        return 0;
    } catch (const c10::Error &e) {
        last_error = e.what_without_backtrace();
    } catch (const std::exception &e) {
        last_error = e.what();
    } catch (...) {
        last_error = "unknown C++ exception";
    }
    return -1;
}

at::ScalarType scalar(pd_dtype d) {
    switch (d) {
    case PD_FLOAT32: return at::kFloat;
    case PD_FLOAT16: return at::kHalf;
    case PD_BFLOAT16: return at::kBFloat16;
    case PD_FLOAT64: return at::kDouble;
    case PD_INT64: return at::kLong;
    case PD_INT32: return at::kInt;
    case PD_INT16: return at::kShort;
    case PD_INT8: return at::kChar;
    case PD_UINT8: return at::kByte;
    case PD_BOOL: return at::kBool;
    }
    throw std::invalid_argument("unknown dtype " + std::to_string(int(d)));
}

int32_t code(at::ScalarType s) {
    switch (s) {
    case at::kFloat: return PD_FLOAT32;
    case at::kHalf: return PD_FLOAT16;
    case at::kBFloat16: return PD_BFLOAT16;
    case at::kDouble: return PD_FLOAT64;
    case at::kLong: return PD_INT64;
    case at::kInt: return PD_INT32;
    case at::kShort: return PD_INT16;
    case at::kChar: return PD_INT8;
    case at::kByte: return PD_UINT8;
    case at::kBool: return PD_BOOL;
    default: return -1;
    }
}

at::Device device(pd_device_kind kind, int32_t index) {
    if (kind == PD_CPU) return at::Device(at::kCPU);
    if (kind == PD_CUDA) {
        if (!torch::cuda::is_available()) throw std::runtime_error("CUDA requested but this libtorch build has no usable CUDA device");
        return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    throw std::invalid_argument("unknown device kind " + std::to_string(int(kind)));
}

const at::Tensor &get(const pd_tensor *t, const char *what) {
    if (!t) throw std::invalid_argument(std::string("null tensor for ") + what);
    return t->value;
}

c10::optional<at::Tensor> optional(const pd_tensor *t) {
    return t ? c10::optional<at::Tensor>(t->value) : c10::nullopt;
}

void give(at::Tensor value, pd_tensor **out) {
    if (!out) throw std::invalid_argument("null output");
    *out = new pd_tensor{std::move(value)};
}

at::IntArrayRef dims(const int64_t *values, int32_t n) {
    if (n < 0 || (n > 0 && !values)) throw std::invalid_argument("bad dimension list");
    return at::IntArrayRef(values, size_t(n));
}

// Inference only: no autograd bookkeeping inside any entry.
struct NoGrad {
    c10::InferenceMode guard;
};

const char *version_string() {
    static const std::string v = [] {
        std::string s = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH);
        return s;
    }();
    return v.c_str();
}

const pd_torch_api api = {
    PD_TORCH_ABI_VERSION,
    sizeof(pd_torch_api),
    /* last_error */ [] { return last_error.c_str(); },
    /* torch_version */ [] { return version_string(); },
    /* cuda_device_count */ []() -> int32_t {
        try { return torch::cuda::is_available() ? int32_t(torch::cuda::device_count()) : 0; } catch (...) { return 0; }
    },
    /* manual_seed */ [](uint64_t seed) { return guarded([&] { torch::manual_seed(seed); }); },
    /* from_host */ [](const void *data, pd_dtype dtype, const int64_t *shape, int32_t ndim, pd_device_kind kind, int32_t index, pd_tensor **out) {
        return guarded([&] {
            if (!data) throw std::invalid_argument("null data");
            auto sizes = dims(shape, ndim);
            auto cpu = at::from_blob(const_cast<void *>(data), sizes, at::TensorOptions().dtype(scalar(dtype))).clone();
            give(cpu.to(device(kind, index)), out);
        });
    },
    /* to_host */ [](const pd_tensor *t, pd_dtype dtype, void *dst, int64_t capacity) {
        return guarded([&] {
            auto v = get(t, "to_host").to(at::kCPU, scalar(dtype)).contiguous();
            const int64_t bytes = v.numel() * int64_t(v.element_size());
            if (!dst || capacity < bytes) throw std::invalid_argument("host buffer of " + std::to_string(capacity) + " bytes, " + std::to_string(bytes) + " needed");
            std::memcpy(dst, v.data_ptr(), size_t(bytes));
        });
    },
    /* release */ [](pd_tensor *t) { delete t; },
    /* ndim */ [](const pd_tensor *t) -> int32_t { return t ? int32_t(t->value.dim()) : -1; },
    /* shape */ [](const pd_tensor *t, int64_t *out, int32_t capacity) {
        return guarded([&] {
            auto sizes = get(t, "shape").sizes();
            if (!out || capacity < int32_t(sizes.size())) throw std::invalid_argument("shape buffer too small");
            for (size_t i = 0; i < sizes.size(); ++i) out[i] = sizes[i];
        });
    },
    /* dtype */ [](const pd_tensor *t) -> int32_t { return t ? code(t->value.scalar_type()) : -1; },
    /* to */ [](const pd_tensor *t, pd_device_kind kind, int32_t index, pd_dtype dtype, pd_tensor **out) {
        return guarded([&] { give(get(t, "to").to(device(kind, index), scalar(dtype)), out); });
    },
    /* add */ [](const pd_tensor *a, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { NoGrad g; give(at::add(get(a, "add"), get(b, "add")), out); });
    },
    /* mul */ [](const pd_tensor *a, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { NoGrad g; give(at::mul(get(a, "mul"), get(b, "mul")), out); });
    },
    /* matmul */ [](const pd_tensor *a, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { NoGrad g; give(at::matmul(get(a, "matmul"), get(b, "matmul")), out); });
    },
    /* linear */ [](const pd_tensor *x, const pd_tensor *w, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { NoGrad g; give(at::linear(get(x, "linear"), get(w, "linear weight"), optional(b)), out); });
    },
    /* convolution */ [](const pd_tensor *x, const pd_tensor *w, const pd_tensor *b, const int64_t *stride, const int64_t *padding,
                         const int64_t *dilation, int32_t n, int64_t groups, pd_tensor **out) {
        return guarded([&] {
            NoGrad g;
            if (n < 1 || n > 3) throw std::invalid_argument("convolution of rank " + std::to_string(n));
            const int64_t zeros[3] = {0, 0, 0};
            give(at::convolution(get(x, "convolution"), get(w, "convolution weight"), optional(b), dims(stride, n), dims(padding, n),
                                 dims(dilation, n), false, dims(zeros, n), groups),
                 out);
        });
    },
    /* batch_norm */ [](const pd_tensor *x, const pd_tensor *w, const pd_tensor *b, const pd_tensor *mean, const pd_tensor *var, double eps,
                        pd_tensor **out) {
        return guarded([&] {
            NoGrad g;
            give(at::batch_norm(get(x, "batch_norm"), optional(w), optional(b), get(mean, "running_mean"), get(var, "running_var"), false, 0.0,
                                eps, false),
                 out);
        });
    },
    /* relu */ [](const pd_tensor *x, pd_tensor **out) { return guarded([&] { NoGrad g; give(at::relu(get(x, "relu")), out); }); },
    /* max_pool */ [](const pd_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, int32_t n, pd_tensor **out) {
        return guarded([&] {
            NoGrad g;
            const auto &v = get(x, "max_pool");
            switch (n) {
            case 1: give(at::max_pool1d(v, dims(kernel, 1), dims(stride, 1), dims(padding, 1)), out); break;
            case 2: give(at::max_pool2d(v, dims(kernel, 2), dims(stride, 2), dims(padding, 2)), out); break;
            case 3: give(at::max_pool3d(v, dims(kernel, 3), dims(stride, 3), dims(padding, 3)), out); break;
            default: throw std::invalid_argument("max_pool of rank " + std::to_string(n));
            }
        });
    },
    /* reshape */ [](const pd_tensor *x, const int64_t *shape, int32_t ndim, pd_tensor **out) {
        return guarded([&] { give(get(x, "reshape").reshape(dims(shape, ndim)), out); });
    },
};
} // namespace

extern "C" __attribute__((visibility("default"))) const pd_torch_api *pd_torch_api_v1(void) { return &api; }
