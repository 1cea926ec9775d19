// The torch backend: pd_torch.h's table over libtorch's C++ API. Thin on purpose: each entry
// converts handles, calls one ATen function and catches everything (no exception crosses the ABI).
#include "pd_torch.h"

#include <torch/torch.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#ifdef PD_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#ifdef PD_WITH_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>
// group_norm_nhwc.cu: GroupNorm (+ SiLU) of channels-last activations without layout copies.
extern "C" int pd_group_norm_nhwc(const void *x, void *y, int dtype, int64_t items, int64_t positions, int channels, int groups,
                                  double eps, const float *gamma, const float *beta, int silu, float *partial, int slices,
                                  float *params, void *stream);
extern "C" int pd_group_norm_nhwc_slices(int64_t items, int64_t positions, int channels, int dtype);
// layer_norm_rows.cu: LayerNorm of contiguous rows, a warp per row, optionally + a per-frame table.
extern "C" int pd_layer_norm_rows(const void *x, void *y, int dtype, int64_t rows, int channels, const void *gamma, const void *beta,
                                  double eps, const void *table, int64_t length, int frames, void *stream);
// geglu.cu: a · GELU(g) over the two halves of a projection's rows in one pass.
extern "C" int pd_geglu(const void *y, void *out, int dtype, int64_t rows, int64_t inner, void *stream);
#endif

#include <algorithm>
#include <optional>
#include <cmath>
#include <string>
#include <vector>

struct pd_tensor {
    at::Tensor value;
};

struct pd_graph {
#ifdef PD_WITH_CUDA
    at::cuda::CUDAGraph graph;
    // Set while capturing: the side stream the capture records (graphs cannot capture the default stream).
    std::optional<c10::cuda::CUDAStreamGuard> capturing;
#endif
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

#ifdef PD_WITH_CUDA_KERNELS
// The element-type code our CUDA kernels take (0 float32, 1 float16, 2 bfloat16), -1 for types they do not.
int kernel_dtype(at::ScalarType type) {
    switch (type) {
    case at::kFloat: return 0;
    case at::kHalf: return 1;
    case at::kBFloat16: return 2;
    default: return -1;
    }
}

// Whether the environment variable `name` is "1" (read once per name by the callers' statics): PD_NATIVE_*
// switches keep PyTorch's kernels instead of ours, for comparisons.
bool env_flag(const char *name) {
    const char *e = std::getenv(name);
    return e && e[0] == '1';
}
#endif

// LayerNorm over the last dimension, plus `table` (F, C) per frame when given (x as (…, F, L, C)), through
// our kernel (layer_norm_rows.cu) where it applies: CUDA, contiguous rows, weight and bias of x's type,
// nothing to differentiate. An undefined tensor otherwise (the caller uses PyTorch's kernels).
// PD_NATIVE_LAYER_NORM=1 keeps PyTorch's, for comparisons.
at::Tensor fused_layer_norm(const at::Tensor &v, const pd_tensor *w, const pd_tensor *b, double eps, const at::Tensor *table) {
#ifdef PD_WITH_CUDA_KERNELS
    static const bool native_only = env_flag("PD_NATIVE_LAYER_NORM");
    const auto type = v.scalar_type();
    const int dtype = kernel_dtype(type);
    if (native_only || !v.is_cuda() || !w || !b || !v.is_contiguous() || v.dim() < (table ? 3 : 1) || dtype < 0) return {};
    const auto &gamma = w->value, &beta = b->value;
    if (gamma.scalar_type() != type || beta.scalar_type() != type || !gamma.is_contiguous() || !beta.is_contiguous() ||
        gamma.numel() != v.size(-1) || beta.numel() != v.size(-1))
        return {};
    if (at::GradMode::is_enabled() && (v.requires_grad() || gamma.requires_grad() || beta.requires_grad() || (table && table->requires_grad())))
        return {};
    if (table && (table->scalar_type() != type || !table->is_contiguous() || table->numel() != v.size(-3) * v.size(-1))) return {};
    auto y = at::empty_like(v);
    const int64_t channels = v.size(-1), rows = channels > 0 ? v.numel() / channels : 0;
    const int rc = pd_layer_norm_rows(v.data_ptr(), y.data_ptr(), dtype, rows, int(channels),
                                      gamma.data_ptr(), beta.data_ptr(), eps, table ? table->data_ptr() : nullptr, table ? v.size(-2) : 1,
                                      table ? int(v.size(-3)) : 1, c10::cuda::getCurrentCUDAStream(v.device().index()).stream());
    if (rc == -1) throw std::runtime_error("layer_norm: a CUDA kernel did not launch");
    if (rc == 0) return y;
#else
    (void)v; (void)w; (void)b; (void)eps; (void)table;
#endif
    return {};
}

void give(at::Tensor value, pd_tensor **out) {
    if (!out) throw std::invalid_argument("null output");
    *out = new pd_tensor{std::move(value)};
}

// The tensors behind `count` handles (sharing storage: in-place updates reach the caller's tensors).
std::vector<at::Tensor> tensors(pd_tensor *const *handles, int32_t count, const char *what) {
    if (count < 0 || (count > 0 && !handles)) throw std::invalid_argument(std::string("bad tensor list for ") + what);
    std::vector<at::Tensor> out;
    out.reserve(size_t(count));
    for (int32_t i = 0; i < count; ++i) out.push_back(get(handles[i], what));
    return out;
}

at::IntArrayRef dims(const int64_t *values, int32_t n) {
    if (n < 0 || (n > 0 && !values)) throw std::invalid_argument("bad dimension list");
    return at::IntArrayRef(values, size_t(n));
}

#define PD_TORCH_AT_LEAST(major, minor) (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// Multi-tensor (foreach) kernels need every tensor on one CUDA device.
bool all_on_one_cuda_device(const std::vector<at::Tensor> &ts) {
    if (ts.empty() || !ts[0].is_cuda()) return false;
    const auto d = ts[0].device();
    return std::all_of(ts.begin(), ts.end(), [&](const at::Tensor &t) { return t.device() == d && t.scalar_type() == ts[0].scalar_type(); });
}

// Autograd and autocast modes are thread-local RAII objects in libtorch; the ABI hands them out as
// heap objects so that Swift can scope them (enter and leave on one thread, LIFO).
struct Guard {
    virtual ~Guard() = default;
};
struct InferenceGuard : Guard {
    c10::InferenceMode mode;
};
struct NoGradGuard : Guard {
    at::NoGradGuard mode;
};
// torch.autocast("cuda", dtype) as a scope: enables CUDA autocast with `dtype`, restoring the previous
// state (and clearing the cast cache when autocast ends, as Python's exit does).
struct AutocastGuard : Guard {
    bool was_enabled;
    at::ScalarType previous_dtype;
    explicit AutocastGuard(at::ScalarType dtype) {
#if PD_TORCH_AT_LEAST(2, 4)
        was_enabled = at::autocast::is_autocast_enabled(at::kCUDA);
        previous_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
        was_enabled = at::autocast::is_enabled();
        previous_dtype = at::autocast::get_autocast_gpu_dtype();
        at::autocast::set_enabled(true);
        at::autocast::set_autocast_gpu_dtype(dtype);
#endif
        at::autocast::increment_nesting();
    }
    ~AutocastGuard() override {
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if PD_TORCH_AT_LEAST(2, 4)
        at::autocast::set_autocast_enabled(at::kCUDA, was_enabled);
        at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype);
#else
        at::autocast::set_enabled(was_enabled);
        at::autocast::set_autocast_gpu_dtype(previous_dtype);
#endif
    }
};

at::Tensor activate(const at::Tensor &x, int32_t kind) {
    switch (kind) {
    case PD_ACT_RELU: return at::relu(x);
    case PD_ACT_SILU: return at::silu(x);
    case PD_ACT_GELU: return at::gelu(x);
    case PD_ACT_GELU_TANH: return at::gelu(x, "tanh");
    case PD_ACT_SIGMOID: return at::sigmoid(x);
    case PD_ACT_TANH: return at::tanh(x);
    }
    throw std::invalid_argument("unknown activation " + std::to_string(kind));
}

at::Tensor attend(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, double scale) {
    const double s = scale > 0 ? scale : 1.0 / std::sqrt(double(q.size(-1)));
#if PD_TORCH_AT_LEAST(2, 1)
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, false, s);
#else
    return at::matmul(at::softmax(at::matmul(q, k.transpose(-2, -1)) * s, -1), v);
#endif
}

#ifdef PD_WITH_CUDA
auto device_stats(int32_t index) {
    return c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
}
#endif

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
            auto host = at::from_blob(const_cast<void *>(data), sizes, at::TensorOptions().dtype(scalar(dtype)));
            // The caller's buffer is only borrowed: CPU tensors get their own copy; for CUDA the (synchronous,
            // pageable) upload is that copy, so a second one on the host would only cost time.
            give(kind == PD_CPU ? host.clone() : host.to(device(kind, index), /*non_blocking=*/false, /*copy=*/true), out);
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
        return guarded([&] { give(at::add(get(a, "add"), get(b, "add")), out); });
    },
    /* mul */ [](const pd_tensor *a, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { give(at::mul(get(a, "mul"), get(b, "mul")), out); });
    },
    /* matmul */ [](const pd_tensor *a, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { give(at::matmul(get(a, "matmul"), get(b, "matmul")), out); });
    },
    /* linear */ [](const pd_tensor *x, const pd_tensor *w, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { give(at::linear(get(x, "linear"), get(w, "linear weight"), optional(b)), out); });
    },
    /* convolution */ [](const pd_tensor *x, const pd_tensor *w, const pd_tensor *b, const int64_t *stride, const int64_t *padding,
                         const int64_t *dilation, int32_t n, int64_t groups, pd_tensor **out) {
        return guarded([&] {
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
            give(at::batch_norm(get(x, "batch_norm"), optional(w), optional(b), get(mean, "running_mean"), get(var, "running_var"), false, 0.0,
                                eps, false),
                 out);
        });
    },
    /* relu */ [](const pd_tensor *x, pd_tensor **out) { return guarded([&] { give(at::relu(get(x, "relu")), out); }); },
    /* max_pool */ [](const pd_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, int32_t n, pd_tensor **out) {
        return guarded([&] {
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
    /* sub */ [](const pd_tensor *a, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { give(at::sub(get(a, "sub"), get(b, "sub")), out); });
    },
    /* div */ [](const pd_tensor *a, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] { give(at::div(get(a, "div"), get(b, "div")), out); });
    },
    /* affine */ [](const pd_tensor *x, double scale, double shift, pd_tensor **out) {
        return guarded([&] { give(get(x, "affine") * scale + shift, out); });
    },
    /* activation */ [](const pd_tensor *x, int32_t kind, pd_tensor **out) {
        return guarded([&] { give(activate(get(x, "activation"), kind), out); });
    },
    /* group_norm */ [](const pd_tensor *x, int64_t groups, const pd_tensor *w, const pd_tensor *b, double eps, pd_tensor **out) {
        return guarded([&] { give(at::group_norm(get(x, "group_norm"), groups, optional(w), optional(b), eps), out); });
    },
    /* layer_norm */ [](const pd_tensor *x, int32_t n, const pd_tensor *w, const pd_tensor *b, double eps, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "layer_norm");
            if (n < 1 || n > v.dim()) throw std::invalid_argument("layer_norm over " + std::to_string(n) + " of " + std::to_string(v.dim()) + " dimensions");
            if (n == 1) {
                auto y = fused_layer_norm(v, w, b, eps, nullptr);
                if (y.defined()) return give(y, out);
            }
            give(at::layer_norm(v, v.sizes().slice(size_t(v.dim() - n)), optional(w), optional(b), eps), out);
        });
    },
    /* avg_pool */ [](const pd_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, int32_t n, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "avg_pool");
            switch (n) {
            case 1: give(at::avg_pool1d(v, dims(kernel, 1), dims(stride, 1), dims(padding, 1)), out); break;
            case 2: give(at::avg_pool2d(v, dims(kernel, 2), dims(stride, 2), dims(padding, 2)), out); break;
            case 3: give(at::avg_pool3d(v, dims(kernel, 3), dims(stride, 3), dims(padding, 3)), out); break;
            default: throw std::invalid_argument("avg_pool of rank " + std::to_string(n));
            }
        });
    },
    /* pad */ [](const pd_tensor *x, const int64_t *pads, int32_t n, double value, pd_tensor **out) {
        return guarded([&] { give(at::constant_pad_nd(get(x, "pad"), dims(pads, n), value), out); });
    },
    /* permute */ [](const pd_tensor *x, const int64_t *order, int32_t n, pd_tensor **out) {
        return guarded([&] { give(get(x, "permute").permute(dims(order, n)), out); });
    },
    /* narrow */ [](const pd_tensor *x, int64_t dim, int64_t start, int64_t length, pd_tensor **out) {
        return guarded([&] { give(get(x, "narrow").narrow(dim, start, length), out); });
    },
    /* cat */ [](const pd_tensor *const *xs, int32_t count, int64_t dim, pd_tensor **out) {
        return guarded([&] {
            if (count < 1 || !xs) throw std::invalid_argument("cat of no tensors");
            std::vector<at::Tensor> parts;
            for (int32_t i = 0; i < count; ++i) parts.push_back(get(xs[i], "cat"));
            give(at::cat(parts, dim), out);
        });
    },
    /* softmax */ [](const pd_tensor *x, int64_t dim, pd_tensor **out) {
        return guarded([&] { give(at::softmax(get(x, "softmax"), dim), out); });
    },
    /* reduce */ [](const pd_tensor *x, int32_t kind, const int64_t *over, int32_t n, int32_t keepdim, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "reduce");
            switch (kind) {
            case PD_REDUCE_SUM: give(at::sum(v, dims(over, n), keepdim != 0), out); break;
            case PD_REDUCE_MEAN: give(at::mean(v, dims(over, n), keepdim != 0), out); break;
            default: throw std::invalid_argument("unknown reduction " + std::to_string(kind));
            }
        });
    },
    /* l2_normalize */ [](const pd_tensor *x, int64_t dim, double eps, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "l2_normalize");
            give(v / at::clamp_min(at::linalg_vector_norm(v, 2, at::IntArrayRef{dim}, true), eps), out);
        });
    },
    /* attention */ [](const pd_tensor *q, const pd_tensor *k, const pd_tensor *v, double scale, pd_tensor **out) {
        return guarded([&] { give(attend(get(q, "attention q"), get(k, "attention k"), get(v, "attention v"), scale), out); });
    },
    /* upsample_nearest */ [](const pd_tensor *x, const int64_t *factors, int32_t n, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "upsample_nearest");
            if (n < 1 || n > 3 || v.dim() != n + 2) throw std::invalid_argument("upsample_nearest of " + std::to_string(n) + " dimensions on a " + std::to_string(v.dim()) + "-d tensor");
            std::vector<int64_t> size;
            for (int32_t i = 0; i < n; ++i) size.push_back(v.size(2 + i) * factors[i]);
            switch (n) {
            case 1: give(at::upsample_nearest1d(v, size), out); break;
            case 2: give(at::upsample_nearest2d(v, size), out); break;
            default: give(at::upsample_nearest3d(v, size), out); break;
            }
        });
    },
    /* guard_enter */ [](int32_t kind) -> void * {
        Guard *made = nullptr;
        const int32_t status = guarded([&] {
            switch (kind) {
            case PD_GUARD_INFERENCE: made = new InferenceGuard(); break;
            case PD_GUARD_NO_GRAD: made = new NoGradGuard(); break;
            case PD_GUARD_AUTOCAST_FP16: made = new AutocastGuard(at::kHalf); break;
            case PD_GUARD_AUTOCAST_BF16: made = new AutocastGuard(at::kBFloat16); break;
            default: throw std::invalid_argument("unknown guard kind " + std::to_string(kind));
            }
        });
        return status == 0 ? made : nullptr;
    },
    /* guard_leave */ [](void *guard) { delete static_cast<Guard *>(guard); },
    /* set_tf32 */ [](int32_t matmul, int32_t convolution) {
        return guarded([&] {
            at::globalContext().setAllowTF32CuBLAS(matmul != 0);
            at::globalContext().setAllowTF32CuDNN(convolution != 0);
        });
    },
    /* synchronize */ [](int32_t index) {
        return guarded([&] {
            if (torch::cuda::is_available()) torch::cuda::synchronize(index);
        });
    },
    /* memory_stats */ [](int32_t index, int64_t *allocated, int64_t *peak, int64_t *reserved) {
        return guarded([&] {
#ifdef PD_WITH_CUDA
            const auto stats = device_stats(index);
            // StatType::AGGREGATE, index 0 in every version (the enum moved namespaces in 2.x).
            const size_t all = 0;
            if (allocated) *allocated = stats.allocated_bytes[all].current;
            if (peak) *peak = stats.allocated_bytes[all].peak;
            if (reserved) *reserved = stats.reserved_bytes[all].current;
#else
            (void)index, (void)allocated, (void)peak, (void)reserved;
            throw std::runtime_error("memory statistics need a CUDA build of the torch backend");
#endif
        });
    },
    /* reset_peak_memory */ [](int32_t index) {
        return guarded([&] {
#ifdef PD_WITH_CUDA
            c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(index));
#else
            (void)index;
            throw std::runtime_error("memory statistics need a CUDA build of the torch backend");
#endif
        });
    },
    /* built_with_cuda */ []() -> int32_t {
#ifdef PD_WITH_CUDA
        return 1;
#else
        return 0;
#endif
    },
    /* clamp */ [](const pd_tensor *x, double low, double high, pd_tensor **out) {
        return guarded([&] { give(at::clamp(get(x, "clamp"), low, high), out); });
    },
    /* device_of */ [](const pd_tensor *t, int32_t *kind, int32_t *index) {
        return guarded([&] {
            const auto d = get(t, "device_of").device();
            if (!kind || !index) throw std::invalid_argument("null output");
            *kind = d.is_cuda() ? PD_CUDA : PD_CPU;
            *index = d.is_cuda() ? int32_t(d.index()) : 0;
        });
    },
    /* set_cudnn_benchmark */ [](int32_t enabled) { return guarded([&] { at::globalContext().setBenchmarkCuDNN(enabled != 0); }); },
    /* set_requires_grad */ [](pd_tensor *t, int32_t flag) {
        return guarded([&] {
            if (!t) throw std::invalid_argument("null tensor for set_requires_grad");
            t->value.requires_grad_(flag != 0);
        });
    },
    /* backward */ [](const pd_tensor *loss) { return guarded([&] { get(loss, "backward").backward(); }); },
    /* grad */ [](const pd_tensor *t, pd_tensor **out) {
        return guarded([&] {
            if (!out) throw std::invalid_argument("null output");
            const auto &g = get(t, "grad").grad();
            *out = g.defined() ? new pd_tensor{g} : nullptr;
        });
    },
    /* clear_grads */ [](pd_tensor *const *ts, int32_t count) {
        return guarded([&] {
            for (auto &p : tensors(ts, count, "clear_grads")) p.mutable_grad().reset();
        });
    },
    /* copy_into */ [](pd_tensor *dst, const pd_tensor *src) {
        return guarded([&] {
            if (!dst) throw std::invalid_argument("null tensor for copy_into");
            at::NoGradGuard no_grad;
            dst->value.copy_(get(src, "copy_into"));
        });
    },
    /* zeros_like */ [](const pd_tensor *t, pd_tensor **out) {
        return guarded([&] { give(at::zeros_like(get(t, "zeros_like"), at::MemoryFormat::Contiguous), out); });
    },
    /* binary_cross_entropy */ [](const pd_tensor *x, const pd_tensor *y, pd_tensor **out) {
        return guarded([&] {
            // Autocast bans BCE on CUDA (unsafe in half precision); the reference computes it in float32.
            c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKeySet({c10::DispatchKey::AutocastCUDA, c10::DispatchKey::AutocastCPU}));
            give(at::binary_cross_entropy(get(x, "binary_cross_entropy").to(at::kFloat), get(y, "binary_cross_entropy").to(at::kFloat)), out);
        });
    },
    /* scale_grads */ [](pd_tensor *const *params, int32_t count, double scale, int32_t *found_nonfinite) {
        return guarded([&] {
            at::NoGradGuard no_grad;
            std::vector<at::Tensor> grads;
            for (auto &p : tensors(params, count, "scale_grads"))
                if (p.grad().defined()) grads.push_back(p.mutable_grad());
            bool nonfinite = false;
            if (!grads.empty() && all_on_one_cuda_device(grads)) {
                // GradScaler's own kernel: unscale and check every gradient in a few launches.
                auto found = at::zeros({1}, grads[0].options().dtype(at::kFloat));
                auto inverse = at::full({1}, scale, grads[0].options().dtype(at::kFloat));
                at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inverse);
                nonfinite = found.item<float>() != 0;
            } else {
                // One flag per device, read once at the end: a host round trip per gradient would stall a GPU.
                std::vector<at::Tensor> flags;
                for (auto &g : grads) {
                    if (scale != 1.0) g.mul_(scale);
                    const auto bad = at::isfinite(g).logical_not().any();
                    auto same = std::find_if(flags.begin(), flags.end(), [&](const at::Tensor &f) { return f.device() == bad.device(); });
                    if (same == flags.end()) flags.push_back(bad); else same->logical_or_(bad);
                }
                for (auto &f : flags) nonfinite = nonfinite || f.item<bool>();
            }
            if (found_nonfinite) *found_nonfinite = nonfinite ? 1 : 0;
        });
    },
    /* clip_grad_norm */ [](pd_tensor *const *params, int32_t count, double max_norm, double *total_norm) {
        return guarded([&] {
            at::NoGradGuard no_grad;
            std::vector<at::Tensor> grads;
            for (auto &p : tensors(params, count, "clip_grad_norm"))
                if (p.grad().defined()) grads.push_back(p.mutable_grad());
            if (grads.empty()) { if (total_norm) *total_norm = 0; return; }
            const auto where = grads[0].device();
#if PD_TORCH_AT_LEAST(2, 1)
            if (all_on_one_cuda_device(grads)) {
                // Multi-tensor kernels, as torch.nn.utils.clip_grad_norm_ uses by default on CUDA.
                const auto total = at::norm(at::stack(at::_foreach_norm(grads, 2)), 2);
                const auto coefficient = at::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
                at::_foreach_mul_(grads, coefficient);
                if (total_norm) *total_norm = total.item<double>();
                return;
            }
#endif
            std::vector<at::Tensor> norms;
            for (auto &g : grads) norms.push_back(at::norm(g.to(at::kFloat), 2).to(where));
            const auto total = at::norm(at::stack(norms), 2);
            // As clip_grad_norm_: always multiply by the clamped coefficient (no host round trip decides it).
            const auto coefficient = at::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
            for (auto &g : grads) g.mul_(coefficient.to(g.device()).to(g.scalar_type()));
            if (total_norm) *total_norm = total.item<double>();
        });
    },
    /* adamw_step */ [](pd_tensor *const *params, pd_tensor *const *exp_avg, pd_tensor *const *exp_avg_sq, int32_t count,
                        int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay) {
        return guarded([&] {
            if (step < 1) throw std::invalid_argument("AdamW steps count from 1");
            at::NoGradGuard no_grad;
            auto ps = tensors(params, count, "adamw_step");
            auto ms = tensors(exp_avg, count, "adamw_step exp_avg");
            auto vs = tensors(exp_avg_sq, count, "adamw_step exp_avg_sq");
            // torch.optim.AdamW's single-tensor algorithm, in its order of operations.
            const double bias1 = 1 - std::pow(beta1, double(step));
            const double bias2 = 1 - std::pow(beta2, double(step));
            const double step_size = lr / bias1;
            const double bias2_sqrt = std::sqrt(bias2);
            std::vector<at::Tensor> p_, g_, m_, v_;
            for (int32_t i = 0; i < count; ++i) {
                if (!ps[i].grad().defined()) continue;
                p_.push_back(ps[i]); g_.push_back(ps[i].grad()); m_.push_back(ms[i]); v_.push_back(vs[i]);
            }
            if (p_.empty()) return;
#if PD_TORCH_AT_LEAST(2, 1)
            if (all_on_one_cuda_device(p_)) {
                // The same arithmetic with multi-tensor kernels (torch.optim.AdamW's default `foreach` path on CUDA).
                at::_foreach_mul_(p_, 1 - lr * weight_decay);
                at::_foreach_lerp_(m_, g_, 1 - beta1);
                at::_foreach_mul_(v_, beta2);
                at::_foreach_addcmul_(v_, g_, g_, 1 - beta2);
                auto denom = at::_foreach_sqrt(v_);
                at::_foreach_div_(denom, bias2_sqrt);
                at::_foreach_add_(denom, eps);
                at::_foreach_addcdiv_(p_, m_, denom, -step_size);
                return;
            }
#endif
            for (size_t i = 0; i < p_.size(); ++i) {
                auto &p = p_[i];
                const auto &g = g_[i];
                p.mul_(1 - lr * weight_decay);
                m_[i].lerp_(g, 1 - beta1);
                v_[i].mul_(beta2).addcmul_(g, g, 1 - beta2);
                const auto denom = (v_[i].sqrt() / bias2_sqrt).add_(eps);
                p.addcdiv_(m_[i], denom, -step_size);
            }
        });
    },
    /* mean_across */ [](pd_tensor *const *ts, int32_t count) {
        return guarded([&] {
            at::NoGradGuard no_grad;
            auto xs = tensors(ts, count, "mean_across");
            if (xs.size() < 2) return;
            auto sum = xs[0].clone();
            for (size_t i = 1; i < xs.size(); ++i) sum.add_(xs[i].to(sum.device()));
            sum.div_(double(xs.size()));
            for (auto &x : xs) x.copy_(sum);
        });
    },
    /* contiguous_as */ [](const pd_tensor *x, int32_t channels_last, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "contiguous_as");
            if (channels_last && v.dim() != 4) throw std::invalid_argument("channels-last needs a 4-D tensor, not " + std::to_string(v.dim()) + "-D");
            give(v.contiguous(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous), out);
        });
    },
    /* group_norm_frames */ [](const pd_tensor *x, int64_t frames, int64_t groups, const pd_tensor *w, const pd_tensor *b, double eps,
                               int32_t silu, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "group_norm_frames");
            if (v.dim() != 4) throw std::invalid_argument("group_norm_frames takes (B·F, C, H, W), not a " + std::to_string(v.dim()) + "-D tensor");
            if (frames < 1 || v.size(0) % frames != 0)
                throw std::invalid_argument(std::to_string(v.size(0)) + " frames do not split into items of " + std::to_string(frames));
            const bool channels_last = !v.is_contiguous() && v.is_contiguous(at::MemoryFormat::ChannelsLast);
            const auto n = v.size(0), c = v.size(1), h = v.size(2), width = v.size(3);
#ifdef PD_WITH_CUDA_KERNELS
            // Channels-last on CUDA, nothing to differentiate: our kernel (PyTorch's would copy to NCHW and back).
            // PD_NATIVE_GROUP_NORM=1 keeps PyTorch's, for comparisons.
            static const bool native_only = env_flag("PD_NATIVE_GROUP_NORM");
            const auto type = v.scalar_type();
            const bool differentiable = v.requires_grad() || (w && w->value.requires_grad()) || (b && b->value.requires_grad());
            const int dtype = kernel_dtype(type);
            if (!native_only && v.is_cuda() && channels_last && !differentiable && groups > 0 && c % groups == 0 && dtype >= 0) {
                const int64_t items = n / frames, positions = frames * h * width;
                const int64_t slices = pd_group_norm_nhwc_slices(items, positions, int(c), dtype);
                const auto floats = v.options().dtype(at::kFloat);
                auto y = at::empty_like(v);
                auto partial = at::empty({items * slices * c * 3}, floats), params = at::empty({items * c * 2}, floats);
                at::Tensor gamma, beta;
                if (w) gamma = w->value.to(at::kFloat).contiguous();
                if (b) beta = b->value.to(at::kFloat).contiguous();
                const int rc = pd_group_norm_nhwc(v.data_ptr(), y.data_ptr(), dtype, items, positions,
                                                  int(c), int(groups), eps, gamma.defined() ? gamma.data_ptr<float>() : nullptr,
                                                  beta.defined() ? beta.data_ptr<float>() : nullptr, silu, partial.data_ptr<float>(), int(slices),
                                                  params.data_ptr<float>(), c10::cuda::getCurrentCUDAStream(v.device().index()).stream());
                if (rc == -1) throw std::runtime_error("group_norm_frames: a CUDA kernel did not launch");
                if (rc == 0) return give(y, out);
                // -2: a shape the kernel does not take (channels not whole 16-byte runs, or over 4096 half / 2048 float): PyTorch's path below.
            }
#endif
            at::Tensor y;
            if (frames == 1) {
                y = at::group_norm(v, groups, optional(w), optional(b), eps);
                if (silu) y = at::silu_(y);
                if (channels_last && !y.is_contiguous(at::MemoryFormat::ChannelsLast)) y = y.contiguous(at::MemoryFormat::ChannelsLast);
            } else {
                // (B·F, C, H, W) → the (B, C, F, H, W) view the reference normalises (a view in both layouts:
                // channels-last 4-D memory is channels-last-3d 5-D memory).
                const auto items = n / frames;
                auto y5 = at::group_norm(v.reshape({items, frames, c, h, width}).permute({0, 2, 1, 3, 4}), groups, optional(w), optional(b), eps);
                if (silu) y5 = at::silu_(y5);
                auto back = y5.permute({0, 2, 1, 3, 4});  // (B, F, C, H, W)
                // The input's layout again: a view when group_norm kept it, else one copy.
                if (channels_last ? y5.is_contiguous(at::MemoryFormat::ChannelsLast3d) : back.is_contiguous()) {
                    y = back.view({n, c, h, width});
                } else {
                    y = at::empty({n, c, h, width}, v.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
                    y.view({items, frames, c, h, width}).copy_(back);
                }
            }
            give(y, out);
        });
    },
    /* profiler_start */ [](int32_t cuda) {
        return guarded([&] {
            namespace impl = torch::profiler::impl;
            const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
            std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
            if (cuda) activities.insert(impl::ActivityType::CUDA);
            torch::autograd::profiler::prepareProfiler(config, activities);
            torch::autograd::profiler::enableProfiler(config, activities);
        });
    },
    /* profiler_stop */ [](const char *path) {
        return guarded([&] {
            if (!path) throw std::invalid_argument("profiler_stop needs a path");
            auto result = torch::autograd::profiler::disableProfiler();
            if (!result) throw std::runtime_error("the profiler was not running");
            result->save(path);
        });
    },
    /* geglu_linear */ [](const pd_tensor *x, const pd_tensor *w, const pd_tensor *b, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "geglu_linear");
            const auto &weight = get(w, "geglu_linear weight");
            if (weight.dim() != 2 || weight.size(0) % 2 != 0)
                throw std::invalid_argument("geglu_linear needs a [2·inner, C] weight, not " + std::to_string(weight.dim()) + "-D with " +
                                            std::to_string(weight.size(0)) + " rows");
            const int64_t inner = weight.size(0) / 2;
#ifdef PD_WITH_CUDA_KERNELS
            // PD_NATIVE_GEGLU=1 keeps PyTorch's kernels, for comparisons.
            static const bool native_only = env_flag("PD_NATIVE_GEGLU");
            const bool differentiable = at::GradMode::is_enabled() &&
                                        (v.requires_grad() || weight.requires_grad() || (b && b->value.requires_grad()));
            if (!native_only && v.is_cuda() && !differentiable) {
                auto y = at::linear(v, weight, optional(b)).contiguous();
                const int dtype = kernel_dtype(y.scalar_type());
                if (dtype >= 0) {
                    auto sizes = y.sizes().vec();
                    sizes.back() = inner;
                    auto result = at::empty(sizes, y.options());
                    const int rc = pd_geglu(y.data_ptr(), result.data_ptr(), dtype, y.numel() / (2 * inner), inner,
                                            c10::cuda::getCurrentCUDAStream(y.device().index()).stream());
                    if (rc == -1) throw std::runtime_error("geglu_linear: a CUDA kernel did not launch");
                    if (rc == 0) return give(result, out);
                }
                // A type or shape the kernel does not take: the gate from the product already made.
                return give(y.narrow(-1, 0, inner) * at::gelu(y.narrow(-1, inner, inner)), out);
            }
#endif
            // Each half's product on its own rows of the weight: the halves come out contiguous, so GELU and
            // the product run as vectorised kernels instead of strided ones.
            const auto bias = optional(b);
            auto half = [&](int64_t start) {
                return at::linear(v, weight.narrow(0, start, inner), bias ? c10::optional<at::Tensor>(bias->narrow(0, start, inner)) : c10::nullopt);
            };
            give(half(0) * at::gelu(half(inner)), out);
        });
    },
    /* layer_norm_add_frames */ [](const pd_tensor *x, const pd_tensor *w, const pd_tensor *b, double eps, const pd_tensor *table, pd_tensor **out) {
        return guarded([&] {
            const auto &v = get(x, "layer_norm_add_frames");
            const auto &t = get(table, "layer_norm_add_frames table");
            if (v.dim() < 3 || t.numel() != v.size(-3) * v.size(-1))
                throw std::invalid_argument("layer_norm_add_frames takes (…, F, L, C) and an (F, C) table, not " + std::to_string(v.dim()) + "-D x and a " +
                                            std::to_string(t.numel()) + "-value table");
            auto y = fused_layer_norm(v, w, b, eps, &t);
            if (y.defined()) return give(y, out);
            give(at::layer_norm(v, {v.size(-1)}, optional(w), optional(b), eps) + t.reshape({v.size(-3), 1, v.size(-1)}), out);
        });
    },
    /* graph_capture_begin */ [](int32_t index, const pd_graph *share, pd_graph **out) {
        return guarded([&] {
#ifdef PD_WITH_CUDA
            if (!out) throw std::invalid_argument("graph_capture_begin needs an output");
            if (index < 0 || index >= int32_t(torch::cuda::device_count()))
                throw std::invalid_argument("graph capture on cuda:" + std::to_string(index) + ", which is not a visible device");
            auto g = std::make_unique<pd_graph>();
            torch::cuda::synchronize(index);  // the inputs, queued on the current stream, are ready
            g->capturing.emplace(c10::cuda::getStreamFromPool(false, c10::DeviceIndex(index)));
            try {
                // Thread-local mode: other threads' CUDA calls (another model, a decoder) do not break the capture.
                if (share) g->graph.capture_begin(const_cast<pd_graph *>(share)->graph.pool(), cudaStreamCaptureModeThreadLocal);  // pool() is not const; it reads only
                else g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
            } catch (...) {
                g->capturing.reset();
                throw;
            }
            *out = g.release();
#else
            (void)index; (void)share; (void)out;
            throw std::runtime_error("CUDA graphs need a CUDA build of the torch backend");
#endif
        });
    },
    /* graph_capture_end */ [](pd_graph *g) {
        return guarded([&] {
#ifdef PD_WITH_CUDA
            if (!g || !g->capturing) throw std::invalid_argument("graph_capture_end on a graph that is not capturing");
            struct Restore {
                pd_graph *g;
                ~Restore() { g->capturing.reset(); }
            } restore{g};
            g->graph.capture_end();
#else
            (void)g;
            throw std::runtime_error("CUDA graphs need a CUDA build of the torch backend");
#endif
        });
    },
    /* graph_replay */ [](pd_graph *g) {
        return guarded([&] {
#ifdef PD_WITH_CUDA
            if (!g || g->capturing) throw std::invalid_argument("graph_replay on a graph that is still capturing");
            g->graph.replay();
#else
            (void)g;
            throw std::runtime_error("CUDA graphs need a CUDA build of the torch backend");
#endif
        });
    },
    /* graph_release */ [](pd_graph *g) {
#ifdef PD_WITH_CUDA
        if (g && g->capturing) {
            try { g->graph.capture_end(); } catch (...) {}  // an abandoned capture: leave capture mode first
            g->capturing.reset();
        }
#endif
        delete g;
    },
};
} // namespace

extern "C" __attribute__((visibility("default"))) const pd_torch_api *pd_torch_api_v1(void) { return &api; }
