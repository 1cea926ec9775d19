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
} pd_torch_api;

/// The backend's table, or NULL if it cannot serve this ABI version.
const pd_torch_api *pd_torch_api_v1(void);
typedef const pd_torch_api *(*pd_torch_api_v1_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
