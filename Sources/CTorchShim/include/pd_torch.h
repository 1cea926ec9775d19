// The versioned C ABI between pipelined (Swift, `Inference`) and its torch backend, a shared library
// built from backend/torch/ against any libtorch >= 1.13 and loaded at run time (dlopen). The backend
// exports one function, `pd_torch_api_v1`, returning a table of function pointers; new entries are
// only ever appended (the table carries its size), and an incompatible change bumps the version.
//
// Conventions: every fallible entry returns 0 on success or -1 with a message readable through
// `last_error()` on the same thread (every C++ exception, `...` included, is caught inside). Tensors
// are opaque handles owned by the caller and released with `release`. Shapes are int64 arrays.
#ifndef PIPELINED_PD_TORCH_H
#define PIPELINED_PD_TORCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_TORCH_ABI_VERSION 1

typedef struct pd_tensor pd_tensor;
typedef struct pd_graph pd_graph;

/// Element types (values are part of the ABI).
typedef enum {
    PD_FLOAT32 = 0, PD_FLOAT16 = 1, PD_BFLOAT16 = 2, PD_FLOAT64 = 3,
    PD_INT64 = 4, PD_INT32 = 5, PD_INT16 = 6, PD_INT8 = 7, PD_UINT8 = 8, PD_BOOL = 9
} pd_dtype;

/// Device kinds (values are part of the ABI); an index selects among CUDA devices.
typedef enum { PD_CPU = 0, PD_CUDA = 1 } pd_device_kind;

typedef struct pd_torch_api {
    uint32_t abi_version;   // PD_TORCH_ABI_VERSION of the backend
    uint32_t size;          // sizeof(pd_torch_api) as the backend was built: entries past it are absent

    const char *(*last_error)(void);
    /// libtorch's version ("1.13.1", "2.4.0+cu121").
    const char *(*torch_version)(void);
    /// CUDA devices usable by this build (0 for a CPU-only libtorch).
    int32_t (*cuda_device_count)(void);
    int32_t (*manual_seed)(uint64_t seed);

    // Tensors. `from_host` copies `data` (contiguous, row-major, `dtype`) onto the device.
    int32_t (*from_host)(const void *data, pd_dtype dtype, const int64_t *shape, int32_t ndim,
                         pd_device_kind device, int32_t device_index, pd_tensor **out);
    /// Copies the tensor (made contiguous, converted to `dtype`, brought to the CPU) into `dst`,
    /// which holds `capacity` bytes.
    int32_t (*to_host)(const pd_tensor *t, pd_dtype dtype, void *dst, int64_t capacity);
    void (*release)(pd_tensor *t);
    int32_t (*ndim)(const pd_tensor *t);
    int32_t (*shape)(const pd_tensor *t, int64_t *out, int32_t capacity);
    int32_t (*dtype)(const pd_tensor *t);
    int32_t (*to)(const pd_tensor *t, pd_device_kind device, int32_t device_index, pd_dtype dtype, pd_tensor **out);

    // Operations (inference; `bias` may be NULL).
    int32_t (*add)(const pd_tensor *a, const pd_tensor *b, pd_tensor **out);
    int32_t (*mul)(const pd_tensor *a, const pd_tensor *b, pd_tensor **out);
    int32_t (*matmul)(const pd_tensor *a, const pd_tensor *b, pd_tensor **out);
    int32_t (*linear)(const pd_tensor *x, const pd_tensor *weight, const pd_tensor *bias, pd_tensor **out);
    /// N-d convolution, N = 1, 2 or 3 (from the weight's rank); stride/padding/dilation have N entries.
    int32_t (*convolution)(const pd_tensor *x, const pd_tensor *weight, const pd_tensor *bias, const int64_t *stride,
                           const int64_t *padding, const int64_t *dilation, int32_t n, int64_t groups, pd_tensor **out);
    /// Batch normalisation with running statistics (evaluation mode); weight/bias may be NULL.
    int32_t (*batch_norm)(const pd_tensor *x, const pd_tensor *weight, const pd_tensor *bias, const pd_tensor *running_mean,
                          const pd_tensor *running_var, double eps, pd_tensor **out);
    int32_t (*relu)(const pd_tensor *x, pd_tensor **out);
    /// N-d max pooling, N = 1, 2 or 3; kernel/stride/padding have N entries.
    int32_t (*max_pool)(const pd_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, int32_t n,
                        pd_tensor **out);
    int32_t (*reshape)(const pd_tensor *x, const int64_t *shape, int32_t ndim, pd_tensor **out);

    // --- Appended for StableSyncNet and HyperIQA (layers) ---------------------------------------
    int32_t (*sub)(const pd_tensor *a, const pd_tensor *b, pd_tensor **out);
    int32_t (*div)(const pd_tensor *a, const pd_tensor *b, pd_tensor **out);
    /// `x · scale + shift` with scalars (shapes and dtype kept).
    int32_t (*affine)(const pd_tensor *x, double scale, double shift, pd_tensor **out);
    /// Element-wise activation, `pd_activation`.
    int32_t (*activation)(const pd_tensor *x, int32_t kind, pd_tensor **out);
    /// GroupNorm over (C/groups, spatial…) per item and group; weight/bias may be NULL.
    int32_t (*group_norm)(const pd_tensor *x, int64_t groups, const pd_tensor *weight, const pd_tensor *bias, double eps,
                          pd_tensor **out);
    /// LayerNorm over the last `n` dimensions; weight/bias may be NULL.
    int32_t (*layer_norm)(const pd_tensor *x, int32_t n, const pd_tensor *weight, const pd_tensor *bias, double eps,
                          pd_tensor **out);
    /// N-d average pooling (N = 1, 2, 3; padding counted in the average, floor mode).
    int32_t (*avg_pool)(const pd_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, int32_t n,
                        pd_tensor **out);
    /// Constant padding of the last dimensions; `pads` in torch.nn.functional.pad order (last dimension first:
    /// left, right, top, bottom, …), `n` entries (even).
    int32_t (*pad)(const pd_tensor *x, const int64_t *pads, int32_t n, double value, pd_tensor **out);
    int32_t (*permute)(const pd_tensor *x, const int64_t *dims, int32_t n, pd_tensor **out);
    /// Elements [start, start + length) of dimension `dim` (a view).
    int32_t (*narrow)(const pd_tensor *x, int64_t dim, int64_t start, int64_t length, pd_tensor **out);
    int32_t (*cat)(const pd_tensor *const *xs, int32_t count, int64_t dim, pd_tensor **out);
    int32_t (*softmax)(const pd_tensor *x, int64_t dim, pd_tensor **out);
    /// Sum or mean over `dims` (`n` entries), `keepdim` 0/1.
    int32_t (*reduce)(const pd_tensor *x, int32_t kind, const int64_t *dims, int32_t n, int32_t keepdim, pd_tensor **out);
    /// `x / max(‖x‖₂, eps)` along `dim` (torch.nn.functional.normalize).
    int32_t (*l2_normalize)(const pd_tensor *x, int64_t dim, double eps, pd_tensor **out);
    /// softmax(q·kᵀ·scale)·v over the last two dimensions ([…, L, E] × [… S, E] × [… S, Ev]); fused where the
    /// libtorch has scaled_dot_product_attention (2.x), explicit otherwise. scale ≤ 0 means 1/√E.
    int32_t (*attention)(const pd_tensor *q, const pd_tensor *k, const pd_tensor *v, double scale, pd_tensor **out);
    /// Nearest-neighbour upsampling of the last `n` dimensions by integer factors.
    int32_t (*upsample_nearest)(const pd_tensor *x, const int64_t *factors, int32_t n, pd_tensor **out);

    // --- Appended: execution control -------------------------------------------------------------
    /// Thread-local modes, entered and left on the same thread in LIFO order: `pd_guard_kind`.
    /// `enter` returns an opaque guard (NULL with last_error on failure); `leave` restores the previous mode.
    void *(*guard_enter)(int32_t kind);
    void (*guard_leave)(void *guard);
    /// Allow TensorFloat-32 in CUDA matmuls and convolutions (PyTorch's defaults: convolutions yes, matmuls no).
    int32_t (*set_tf32)(int32_t matmul, int32_t convolution);
    /// Waits for all work queued on the CUDA device (no-op without CUDA).
    int32_t (*synchronize)(int32_t device_index);
    /// CUDA caching-allocator statistics of a device, in bytes: currently allocated, peak allocated since the last
    /// reset, reserved by the allocator. -1 with an error when the backend was built without CUDA.
    int32_t (*memory_stats)(int32_t device_index, int64_t *allocated, int64_t *peak, int64_t *reserved);
    int32_t (*reset_peak_memory)(int32_t device_index);
    /// Whether this build was compiled with CUDA support (memory statistics, autocast on CUDA).
    int32_t (*built_with_cuda)(void);

    // --- Appended for the lip-sync generator (VAE, U-Net) ----------------------------------------
    /// Element-wise clamp to [low, high].
    int32_t (*clamp)(const pd_tensor *x, double low, double high, pd_tensor **out);
    /// Where a tensor lives.
    int32_t (*device_of)(const pd_tensor *t, int32_t *kind, int32_t *index);
    /// cuDNN autotuning of convolution algorithms per input shape (`torch.backends.cudnn.benchmark`).
    int32_t (*set_cudnn_benchmark)(int32_t enabled);

    // --- Appended for training (autograd, optimiser, data parallelism) ---------------------------
    /// Marks a leaf tensor as a parameter whose gradient autograd accumulates (`requires_grad_`).
    int32_t (*set_requires_grad)(pd_tensor *t, int32_t flag);
    /// Back-propagates from a scalar `loss`; gradients accumulate into the leaves' `.grad`.
    int32_t (*backward)(const pd_tensor *loss);
    /// The accumulated gradient of a leaf (sharing its storage), or *out = NULL when it has none.
    int32_t (*grad)(const pd_tensor *t, pd_tensor **out);
    /// Drops the gradients of `count` tensors (`zero_grad(set_to_none=True)`).
    int32_t (*clear_grads)(pd_tensor *const *ts, int32_t count);
    /// Copies `src` into `dst` in place (equal shapes; dtype and device converted), outside autograd.
    int32_t (*copy_into)(pd_tensor *dst, const pd_tensor *src);
    /// Zeros shaped, typed and placed like `t`.
    int32_t (*zeros_like)(const pd_tensor *t, pd_tensor **out);
    /// Mean binary cross-entropy of probabilities `x` against targets `y` (`F.binary_cross_entropy`), computed in
    /// float32 with autocast excluded (autocast refuses it on CUDA), differentiable in `x`.
    int32_t (*binary_cross_entropy)(const pd_tensor *x, const pd_tensor *y, pd_tensor **out);
    /// Multiplies the gradients of `count` parameters by `scale` (loss-scale removal) and reports whether any of
    /// them holds an infinity or NaN (GradScaler.unscale_). Parameters without a gradient are skipped.
    int32_t (*scale_grads)(pd_tensor *const *params, int32_t count, double scale, int32_t *found_nonfinite);
    /// `clip_grad_norm_`: the 2-norm of all gradients together into *total_norm, then every gradient multiplied by
    /// min(1, max_norm / (total + 1e-6)).
    int32_t (*clip_grad_norm)(pd_tensor *const *params, int32_t count, double max_norm, double *total_norm);
    /// One `torch.optim.AdamW` step (decoupled weight decay, bias correction; `step` counts from 1) over `count`
    /// parameters with their first/second moment buffers. Parameters without a gradient are left alone.
    int32_t (*adamw_step)(pd_tensor *const *params, pd_tensor *const *exp_avg, pd_tensor *const *exp_avg_sq, int32_t count,
                          int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay);
    /// In-process all-reduce for data parallelism: `count` same-shaped tensors (one per replica, on any devices)
    /// each replaced by their mean, summed on the first one's device.
    int32_t (*mean_across)(pd_tensor *const *ts, int32_t count);
    /// `x` with the same values in the given memory layout: 0 contiguous (NCHW), 1 channels-last (NHWC; 4-D
    /// tensors). A no-op when it already is.
    int32_t (*contiguous_as)(const pd_tensor *x, int32_t channels_last, pd_tensor **out);
    /// GroupNorm over (B·F, C, H, W) frames whose statistics are pooled over each item's F frames (the reference's
    /// `GroupNorm` on (B, C, F, H, W)); `frames` 1 is a per-frame GroupNorm. With `silu` ≠ 0 SiLU follows. The
    /// result keeps `x`'s memory layout (channels-last stays channels-last).
    int32_t (*group_norm_frames)(const pd_tensor *x, int64_t frames, int64_t groups, const pd_tensor *weight, const pd_tensor *bias,
                                 double eps, int32_t silu, pd_tensor **out);
    /// Starts libtorch's (Kineto) profiler: operators on the CPU and, with `cuda` ≠ 0, CUDA kernels.
    int32_t (*profiler_start)(int32_t cuda);
    /// Stops it and writes what it recorded as a Chrome trace (JSON) to `path`.
    int32_t (*profiler_stop)(const char *path);

    // --- Appended for the generator's speed ------------------------------------------------------
    /// GEGLU: y = x·Wᵀ + b split in halves [a | g] along the last dimension (`weight` is [2·inner, C]),
    /// result a · GELU(g) (exact GELU), [..., inner]. On CUDA without autograd: one product and one fused
    /// kernel; otherwise the two halves' products and PyTorch's GELU and product (differentiable).
    int32_t (*geglu_linear)(const pd_tensor *x, const pd_tensor *weight, const pd_tensor *bias, pd_tensor **out);
    /// LayerNorm over the last dimension of x (…, F, L, C), then + table[f] for every row of frame f; `table`
    /// holds F·C values (AnimateDiff's positional encoding added to the normalised tokens).
    int32_t (*layer_norm_add_frames)(const pd_tensor *x, const pd_tensor *weight, const pd_tensor *bias, double eps, const pd_tensor *table,
                                     pd_tensor **out);
    /// CUDA graphs (`torch.cuda.CUDAGraph`): after `graph_capture_begin` the calling thread's work on the device
    /// goes to a side stream and is recorded, not run, until `graph_capture_end` (same thread); tensors created
    /// meanwhile live in the graph's private memory pool (shared with `share_pool_with` when not NULL: graphs
    /// replayed one after another). `graph_replay` runs the recorded work again on the current stream, reading
    /// and writing the same memory. Begin waits for the device's queued work. -1 with an error on a CPU build.
    int32_t (*graph_capture_begin)(int32_t device_index, const pd_graph *share_pool_with, pd_graph **out);
    int32_t (*graph_capture_end)(pd_graph *graph);
    int32_t (*graph_replay)(pd_graph *graph);
    void (*graph_release)(pd_graph *graph);
} pd_torch_api;

/// `activation` kinds (values are part of the ABI).
typedef enum {
    PD_ACT_RELU = 0, PD_ACT_SILU = 1, PD_ACT_GELU = 2 /* exact (erf) */, PD_ACT_GELU_TANH = 3, PD_ACT_SIGMOID = 4, PD_ACT_TANH = 5
} pd_activation;

/// `reduce` kinds.
typedef enum { PD_REDUCE_SUM = 0, PD_REDUCE_MEAN = 1 } pd_reduction;

/// `guard_enter` kinds: no autograd recording at all (inference mode), autograd off (no_grad), CUDA autocast to
/// float16 or bfloat16.
typedef enum { PD_GUARD_INFERENCE = 0, PD_GUARD_NO_GRAD = 1, PD_GUARD_AUTOCAST_FP16 = 2, PD_GUARD_AUTOCAST_BF16 = 3 } pd_guard_kind;

/// The backend's table, or NULL if it cannot serve this ABI version.
const pd_torch_api *pd_torch_api_v1(void);
typedef const pd_torch_api *(*pd_torch_api_v1_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
