// Lanczos-4 warpAffine and resize for packed 8-bit images, bit-exact to OpenCV 4.6 (INTER_LANCZOS4,
// BORDER_CONSTANT for the warp, replicate for the resize) and several times faster. The recipes are
// those of ../shared/golden/README.md ("affine/"): OpenCV's float Lanczos coefficients turned into
// int16 fixed point, integer sums, round-half-up shifts. Everything after the coefficient tables is
// integer arithmetic, so any summation order (scalar or SIMD) gives OpenCV's bytes exactly.
//
// Speed comes from: coefficient tables built once (the warp's 1024 2-D tables) or once per size (the
// resize's per-column/per-row taps, cached per thread), integer multiply-adds, and AVX2 kernels chosen
// at run time (the package builds for the x86-64 baseline), with a portable scalar path that is exact
// too (the one used on aarch64). About 6× OpenCV for the warp and resize of the face-alignment step.
#include "cvision.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define CVISION_LANCZOS_X86 1
#endif

// The coefficients must be computed exactly as OpenCV (built without FMA) computes them: keep the
// compiler from fusing a*b+c into one rounding (clang contracts by default, e.g. on aarch64).
#ifdef __clang__
#pragma clang fp contract(off)
#endif

namespace {

constexpr double kPi = 3.1415926535897932384626433832795;  // CV_PI

// OpenCV's interpolateLanczos4 (imgwarp.cpp / resize.cpp), expression for expression: float and
// double exactly where OpenCV has them, since the int16 tables round these floats.
void lanczos4(float x, float *coeffs) {
    static const double s45 = 0.70710678118654752440084436210485;
    static const double cs[8][2] = {{1, 0}, {-s45, -s45}, {0, 1}, {s45, -s45}, {-1, 0}, {s45, s45}, {0, -1}, {-s45, s45}};
    float sum = 0;
    const double y0 = -(x + 3) * kPi * 0.25, s0 = std::sin(y0), c0 = std::cos(y0);
    for (int i = 0; i < 8; i++) {
        const float y0_ = (x + 3 - i);
        if (std::fabs(y0_) >= 1e-6f) {
            const double y = -y0_ * kPi * 0.25;
            coeffs[i] = (float)((cs[i][0] * s0 + cs[i][1] * c0) / (y * y));
        } else {
            coeffs[i] = 1e30f;  // the sample sits on a tap: after normalisation that tap is 1, the others 0
        }
        sum += coeffs[i];
    }
    sum = 1.f / sum;
    for (int i = 0; i < 8; i++) coeffs[i] *= sum;
}

// saturate_cast<short>(float): cvRound (round half to even in the default FP mode), then clamp.
int16_t round_to_short(float v) {
    const long r = std::lrint(v);
    return (int16_t)std::min<long>(std::max<long>(r, SHRT_MIN), SHRT_MAX);
}

// saturate_cast<int>(double) on x86-64 is cvtsd2si: round half to even, INT_MIN when out of range.
int round_to_int(double v) {
    const long long r = std::llrint(v);
    return (r >= INT_MIN && r <= INT_MAX) ? (int)r : INT_MIN;
}

int saturate_short(int v) { return std::min(std::max(v, SHRT_MIN), SHRT_MAX); }
uint8_t clamp_u8(int v) { return (uint8_t)std::min(std::max(v, 0), 255); }

// ---------------------------------------------------------------------------------------------
// Warp tables: OpenCV's initInterTab2D(INTER_LANCZOS4, fixpt). For each of the 32×32 source
// fractions (fy, fx) an 8×8 int16 table summing to exactly 32768. Building one costs 64 products and
// a correction, too much to redo per pixel, so all 1024 are built once (128 KiB, thread-safe
// function-local static).
struct WarpTables {
    alignas(64) int16_t w[1024][64];  // [fy·32 + fx][row·8 + column]

    WarpTables() {
        float tab1d[32][8];
        for (int i = 0; i < 32; i++) lanczos4(i * (1.f / 32), tab1d[i]);
        for (int fy = 0; fy < 32; fy++)
            for (int fx = 0; fx < 32; fx++) {
                int16_t *t = w[fy * 32 + fx];
                int isum = 0;
                for (int r = 0; r < 8; r++)
                    for (int c = 0; c < 8; c++) {
                        const float v = tab1d[fy][r] * tab1d[fx][c];
                        isum += t[r * 8 + c] = round_to_short(v * 32768);
                    }
                if (isum != 32768) {
                    // OpenCV's correction: the rounding error goes into one of the four central taps,
                    // the largest if the sum is short, the smallest if it is over (strict comparisons
                    // scanning from (4, 4), so the first of equal entries wins).
                    const int diff = isum - 32768;
                    int mk1 = 4, mk2 = 4, Mk1 = 4, Mk2 = 4;
                    for (int k1 = 4; k1 < 6; k1++)
                        for (int k2 = 4; k2 < 6; k2++) {
                            if (t[k1 * 8 + k2] < t[mk1 * 8 + mk2]) mk1 = k1, mk2 = k2;
                            else if (t[k1 * 8 + k2] > t[Mk1 * 8 + Mk2]) Mk1 = k1, Mk2 = k2;
                        }
                    if (diff < 0) t[Mk1 * 8 + Mk2] = (int16_t)(t[Mk1 * 8 + Mk2] - diff);
                    else t[mk1 * 8 + mk2] = (int16_t)(t[mk1 * 8 + mk2] - diff);
                }
            }
    }
};

const WarpTables &warp_tables() {
    static const WarpTables tables;
    return tables;
}

// AVX2 in the CPU and its 256-bit state saved by the OS (XCR0 bits 1, 2). Read with cpuid/xgetbv
// rather than __builtin_cpu_supports, which needs a runtime symbol (__cpu_model) at link time.
bool use_avx2() {
#if defined(CVISION_LANCZOS_X86) && !defined(CVISION_LANCZOS_FORCE_SCALAR)
    static const bool ok = [] {
        unsigned a, b, c, d;
        if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return false;
        unsigned xcr0_lo, xcr0_hi;
        __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
        if ((xcr0_lo & 6) != 6) return false;
        return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2);
    }();
    return ok;
#else
    return false;  // portable build, or the verification harness forcing the scalar path
#endif
}

struct WarpJob {
    const uint8_t *src;
    int width, height, stride, cn;
    uint8_t border;
    const WarpTables *tables;
    // Inverse-map fixed point (AB_SCALE = 1024): per-column terms and per-row rounded offsets.
    const int *adelta, *bdelta;
    double a01, b0, a11, b1;
    uint8_t *dst;
    int dst_width, dst_height, dst_stride;
    int *tx, *ty, *ta;  // scratch, dst_width each: one output row's taps (see row_taps)
};

// Row offsets as in OpenCV: round((A01·y + b0)·1024) + 16 (16 = half of the 5 dropped bits).
// Then, per output pixel, its source position as OpenCV's warpAffine block line + remap compute it:
// top-left tap (tx, ty) of the 8×8 footprint and the table index ta = fy·32 + fx. Plain branch-free
// integer code, so the compiler vectorises it (with AVX2 when inlined into the AVX2 kernel).
inline void row_taps(const WarpJob &j, int y) {
    const unsigned X0 = (unsigned)round_to_int((j.a01 * y + j.b0) * 1024) + 16u;
    const unsigned Y0 = (unsigned)round_to_int((j.a11 * y + j.b1) * 1024) + 16u;
    const int *__restrict ad = j.adelta, *__restrict bd = j.bdelta;
    int *__restrict tx = j.tx, *__restrict ty = j.ty, *__restrict ta = j.ta;
    const int n = j.dst_width;
    for (int x = 0; x < n; x++) {
        // OpenCV adds in int (wrapping in practice); do it in unsigned to stay well-defined.
        const int X = (int)(X0 + (unsigned)ad[x]) >> 5, Y = (int)(Y0 + (unsigned)bd[x]) >> 5;
        tx[x] = saturate_short(X >> 5) - 3;  // int16 map in OpenCV
        ty[x] = saturate_short(Y >> 5) - 3;
        ta[x] = ((Y & 31) << 5) | (X & 31);
    }
}

// Σ S·w over an 8×8 footprint, for footprints entirely inside the image.
template <int CN> inline void warp_pixel_scalar(const uint8_t *p, ptrdiff_t stride, const int16_t *w, uint8_t *out) {
    int sum[CN] = {};
    for (int r = 0; r < 8; r++, p += stride, w += 8)
        for (int k = 0; k < 8; k++)
            for (int c = 0; c < CN; c++) sum[c] += p[k * CN + c] * w[k];
    for (int c = 0; c < CN; c++) out[c] = clamp_u8((sum[c] + (1 << 14)) >> 15);
}

// Footprints crossing the image edge (a thin frame of output pixels, so plain scalar code): OpenCV
// sums cv·32768 + Σ_inside (S − cv)·w, which equals Σ S·w with outside taps reading cv, because the
// table sums to 32768. A footprint wholly outside gives cv directly.
template <int CN> void warp_pixel_edge(const WarpJob &j, int sx, int sy, const int16_t *w, uint8_t *out) {
    if (sx >= j.width || sx + 8 <= 0 || sy >= j.height || sy + 8 <= 0) {
        for (int c = 0; c < CN; c++) out[c] = j.border;
        return;
    }
    int sum[CN] = {};
    for (int r = 0; r < 8; r++) {
        const int y = sy + r;
        const bool row_in = y >= 0 && y < j.height;
        for (int k = 0; k < 8; k++) {
            const int x = sx + k;
            const int wk = w[r * 8 + k];
            if (row_in && x >= 0 && x < j.width) {
                const uint8_t *p = j.src + (ptrdiff_t)y * j.stride + (ptrdiff_t)x * CN;
                for (int c = 0; c < CN; c++) sum[c] += p[c] * wk;
            } else {
                for (int c = 0; c < CN; c++) sum[c] += j.border * wk;
            }
        }
    }
    for (int c = 0; c < CN; c++) out[c] = clamp_u8((sum[c] + (1 << 14)) >> 15);
}

template <int CN> void warp_rows_scalar(const WarpJob &j) {
    const unsigned inner_w = (unsigned)std::max(j.width - 7, 0), inner_h = (unsigned)std::max(j.height - 7, 0);
    for (int y = 0; y < j.dst_height; y++) {
        row_taps(j, y);
        uint8_t *d = j.dst + (ptrdiff_t)y * j.dst_stride;
        for (int x = 0; x < j.dst_width; x++, d += CN) {
            const int sx = j.tx[x], sy = j.ty[x];
            const int16_t *w = j.tables->w[j.ta[x]];
            if ((unsigned)sx < inner_w && (unsigned)sy < inner_h)
                warp_pixel_scalar<CN>(j.src + (ptrdiff_t)sy * j.stride + (ptrdiff_t)sx * CN, j.stride, w, d);
            else
                warp_pixel_edge<CN>(j, sx, sy, w, d);
        }
    }
}

#ifdef CVISION_LANCZOS_X86
// AVX2 kernels. Products are u8 × int16 summed in pairs by vpmaddwd into int32: exact, and every
// partial sum stays far inside int32 (|Σ| ≤ 255 · max Σ|w| = 255 · 96336 < 2^25), so only the order
// of summation differs from OpenCV. (Float32 would not be safe: 2^25 > 2^24.)
//
// RGB: one footprint row is 24 contiguous bytes, pixels 0..7. vpmaddwd multiplies int16 pairs by
// weight pairs; the weight pairs come straight from the compact table by a 64-bit broadcast load
// ((w0, w1, w2, w3) or (w4, w5, w6, w7) in every 64 bits: no shuffle, 128 bytes of table per pixel).
// So each 64-bit slot of the pixel vector must hold (pixel 0, pixel 1 | pixel 2, pixel 3) of ONE
// channel: lane 0 = (R0 R1 | R2 R3), (G0 G1 | G2 G3), lane 1 = (B0 B1 | B2 B3), zeros. Pixels 0–3
// are bytes 0..11, inside the 16-byte window at offset 0; pixels 4–7 (bytes 12..23) are inside the
// window at offset 8. A 128-bit broadcast load of each window feeds both lanes, one vpshufb per
// window builds the pairs (zero bytes widen u8 to int16), and neither load leaves the footprint. Both
// products land in the same layout, [R R G G | B B 0 0], which one hadd folds to R G B.
// Grey: two footprint rows = 16 bytes widen to 16 int16 and meet the natural table order.
template <int CN> __attribute__((target("avx2"))) void warp_rows_avx2(const WarpJob &j) {
    const unsigned inner_w = (unsigned)std::max(j.width - 7, 0), inner_h = (unsigned)std::max(j.height - 7, 0);
    const __m256i pix0123 = _mm256_setr_epi8(0, -1, 3, -1, 6, -1, 9, -1, 1, -1, 4, -1, 7, -1, 10, -1,  //
                                             2, -1, 5, -1, 8, -1, 11, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i pix4567 = _mm256_setr_epi8(4, -1, 7, -1, 10, -1, 13, -1, 5, -1, 8, -1, 11, -1, 14, -1,  //
                                             6, -1, 9, -1, 12, -1, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i half = _mm_set1_epi32(1 << 14);
    const ptrdiff_t stride = j.stride;
    const WarpTables &tables = *j.tables;
    for (int y = 0; y < j.dst_height; y++) {
        row_taps(j, y);
        const int *tx = j.tx, *ty = j.ty, *ta = j.ta;
        const int n = j.dst_width;
        uint8_t *d = j.dst + (ptrdiff_t)y * j.dst_stride;
        for (int x = 0; x < n; x++, d += CN) {
            const int sx = tx[x], sy = ty[x], a = ta[x];
            if (x + 2 < n) {  // the table entry two pixels ahead is usually not in L1 yet
                _mm_prefetch((const char *)tables.w[ta[x + 2]], _MM_HINT_T0);
                _mm_prefetch((const char *)tables.w[ta[x + 2]] + 64, _MM_HINT_T0);
            }
            if (!((unsigned)sx < inner_w && (unsigned)sy < inner_h)) {
                warp_pixel_edge<CN>(j, sx, sy, tables.w[a], d);
                continue;
            }
            const uint8_t *p = j.src + (ptrdiff_t)sy * stride + (ptrdiff_t)sx * CN;
            const int16_t *w = tables.w[a];
            __m128i s;
            if constexpr (CN == 3) {
                __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
                for (int r = 0; r < 8; r++, p += stride, w += 8) {
                    long long w0123, w4567;
                    std::memcpy(&w0123, w, 8);
                    std::memcpy(&w4567, w + 4, 8);
                    const __m256i a0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
                    const __m256i a1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 8)));
                    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_shuffle_epi8(a0, pix0123), _mm256_set1_epi64x(w0123)));
                    acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_shuffle_epi8(a1, pix4567), _mm256_set1_epi64x(w4567)));
                }
                const __m256i h = _mm256_hadd_epi32(_mm256_add_epi32(acc0, acc1), _mm256_setzero_si256());  // R G 0 0 | B 0 0 0
                s = _mm_unpacklo_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));        // R G B 0
            } else {
                __m256i acc = _mm256_setzero_si256();
                for (int r = 0; r < 8; r += 2, p += 2 * stride, w += 16) {
                    const __m128i rows = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)p),
                                                            _mm_loadl_epi64((const __m128i *)(p + stride)));
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(rows), _mm256_load_si256((const __m256i *)w)));
                }
                s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
                s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
                s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
            }
            s = _mm_srai_epi32(_mm_add_epi32(s, half), 15);
            s = _mm_packs_epi32(s, s);
            s = _mm_packus_epi16(s, s);  // the two saturating packs clamp to 0..255
            const uint32_t v = (uint32_t)_mm_cvtsi128_si32(s);
            if (CN == 3 && x + 1 < n) {
                std::memcpy(d, &v, 4);  // the 4th byte is rewritten by the next pixel
            } else {
                for (int c = 0; c < CN; c++) d[c] = (uint8_t)(v >> (8 * c));
            }
        }
    }
}
#endif

// ---------------------------------------------------------------------------------------------
// Resize: separable, OpenCV's resizeGeneric_ with HResizeLanczos4 / VResizeLanczos4 (fixed point
// 2048 per pass, replicated border). Horizontal sums go to int32 rows kept in a 16-slot ring
// (slot = source row & 15; one output row needs 8 consecutive source rows, so they never collide),
// then the vertical pass combines 8 of them. All sums are exact integers; the largest possible
// |vertical sum| is 2780·(255·2780) + 732·(255·732) ≈ 2.107e9 < 2^31 (largest positive / negative
// tap totals of the int16 coefficients over all t), so OpenCV's int never overflows either and the
// order of summation is free.
struct ResizePlan {
    int sw = 0, sh = 0, dw = 0, dh = 0, cn = 0;
    std::vector<int> xofs, yofs;       // first tap (sx − 3, sy − 3) per output column / row
    std::vector<int16_t> alpha, beta;  // 8 int16 coefficients per output column / row
    std::vector<int16_t> alpha3_buf;   // RGB AVX2 layout of alpha, 64-byte aligned (see hresize_avx2)
    const int16_t *alpha3 = nullptr;
    int pad_l = 0, pad_r = 0;          // replicated pixels the taps reach left / right of a source row
};

// Per-thread scratch: the plan of the last call (the pipeline resizes every frame with the same sizes,
// and its 8·(dw + dh) coefficients — sin, cos, divisions — would otherwise cost a tenth of a call),
// the ring of horizontal sums and one border-extended source row.
struct ResizeScratch {
    ResizePlan plan;
    std::vector<int32_t> ring;
    std::vector<uint8_t> ext;
};

void resize_taps(int dsize, int ssize, std::vector<int> &ofs, std::vector<int16_t> &coef) {
    // As OpenCV: inv_scale = dsize/ssize, then scale = 1/inv_scale (can differ from ssize/dsize in the
    // last bit; no size up to 1500 is known where that changes a coefficient, but stay literal).
    const double scale = 1. / ((double)dsize / ssize);
    ofs.resize(dsize);
    coef.resize((size_t)dsize * 8);
    for (int d = 0; d < dsize; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        const int i = (int)f, s = i - (i > f);  // cvFloor(float)
        f -= s;
        float c[8];
        lanczos4(f, c);
        ofs[d] = s - 3;
        for (int k = 0; k < 8; k++) coef[(size_t)d * 8 + k] = round_to_short(c[k] * 2048);
    }
}

template <class T> T *align64(std::vector<T> &v, size_t n) {
    v.resize(n + 64 / sizeof(T));
    void *p = v.data();
    size_t space = v.size() * sizeof(T);
    return (T *)std::align(64, n * sizeof(T), p, space);
}

void plan_resize(ResizePlan &p, int sw, int sh, int dw, int dh, int cn, bool avx2) {
    if (p.sw == sw && p.sh == sh && p.dw == dw && p.dh == dh && p.cn == cn && (p.alpha3 || !avx2 || cn != 3)) return;
    p.sw = 0;  // invalid until complete (an exception may leave it half-built)
    resize_taps(dw, sw, p.xofs, p.alpha);
    resize_taps(dh, sh, p.yofs, p.beta);
    p.pad_l = std::max(0, -p.xofs[0]);  // xofs is non-decreasing
    p.pad_r = std::max(0, p.xofs[dw - 1] + 8 - sw);
    p.alpha3 = nullptr;
    if (avx2 && cn == 3) {
        int16_t *a3 = align64(p.alpha3_buf, (size_t)dw * 32);
        for (int dx = 0; dx < dw; dx++)
            for (int g = 0; g < 4; g++)
                for (int k = 0; k < 8; k++) a3[dx * 32 + g * 8 + k] = k < 6 ? p.alpha[(size_t)dx * 8 + 2 * g + (k & 1)] : 0;
        p.alpha3 = a3;
    }
    p.sw = sw, p.sh = sh, p.dw = dw, p.dh = dh, p.cn = cn;
}

// `s` points at pixel 0 of a border-extended row: taps never need clamping.
void hresize_scalar(const ResizePlan &p, const uint8_t *s, int32_t *out) {
    const int cn = p.cn;
    for (int dx = 0; dx < p.dw; dx++) {
        const int16_t *a = &p.alpha[(size_t)dx * 8];
        const uint8_t *q = s + (ptrdiff_t)p.xofs[dx] * cn;
        for (int c = 0; c < cn; c++) {
            int sum = 0;
            for (int k = 0; k < 8; k++) sum += q[k * cn + c] * a[k];
            out[dx * cn + c] = sum;
        }
    }
}

void vresize_scalar(const int32_t *const *rows, const int16_t *b, uint8_t *d, int x0, int x1) {
    for (int x = x0; x < x1; x++) {
        int sum = 0;
        for (int k = 0; k < 8; k++) sum += rows[k][x] * b[k];
        d[x] = clamp_u8((sum + (1 << 21)) >> 22);
    }
}

#ifdef CVISION_LANCZOS_X86
// Horizontal pass. RGB: like one footprint row of the warp, but the per-column coefficients are laid
// out ahead (alpha3, 64 bytes per column, reused by every row) so that each 128-bit lane holds one
// pair of pixels: (R_a, R_b), (G_a, G_b), (B_a, B_b), (0, 0) against (α_a, α_b)×3, (0, 0). Both
// products then read [R G B 0 | R G B 0] and one lane add finishes the column.
__attribute__((target("avx2"))) void hresize_avx2(const ResizePlan &p, const uint8_t *s, int32_t *out) {
    int dx = 0;
    if (p.cn == 3) {
        const __m256i lo_groups = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,  //
                                                   6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
        const __m256i hi_groups = _mm256_setr_epi8(4, -1, 7, -1, 5, -1, 8, -1, 6, -1, 9, -1, -1, -1, -1, -1,  //
                                                   10, -1, 13, -1, 11, -1, 14, -1, 12, -1, 15, -1, -1, -1, -1, -1);
        const int *xofs = p.xofs.data(), n = p.dw;
        const int16_t *alpha3 = p.alpha3;
        for (; dx < n; dx++) {
            const uint8_t *q = s + (ptrdiff_t)xofs[dx] * 3;
            const __m256i *w = (const __m256i *)(alpha3 + dx * 32);
            const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
            const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(q + 8)));
            const __m256i acc = _mm256_add_epi32(_mm256_madd_epi16(_mm256_shuffle_epi8(a, lo_groups), _mm256_load_si256(w)),
                                                 _mm256_madd_epi16(_mm256_shuffle_epi8(b, hi_groups), _mm256_load_si256(w + 1)));
            // R G B 0: the 4th int lands on the next column's R, rewritten next (rows have slack).
            _mm_storeu_si128((__m128i *)(out + dx * 3),
                             _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1)));
        }
    } else {
        // Grey: four output columns per step, each an 8-byte window against its 8 coefficients.
        for (; dx + 4 <= p.dw; dx += 4) {
            const int *o = &p.xofs[dx];
            const __m256i *w = (const __m256i *)&p.alpha[(size_t)dx * 8];
            const __m256i v01 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(s + o[0])),
                                                                        _mm_loadl_epi64((const __m128i *)(s + o[1]))));
            const __m256i v23 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(s + o[2])),
                                                                        _mm_loadl_epi64((const __m128i *)(s + o[3]))));
            __m256i h = _mm256_hadd_epi32(_mm256_madd_epi16(v01, _mm256_loadu_si256(w)),
                                          _mm256_madd_epi16(v23, _mm256_loadu_si256(w + 1)));
            h = _mm256_hadd_epi32(h, h);  // lane 0: c0 c2 c0 c2, lane 1: c1 c3 c1 c3
            _mm_storeu_si128((__m128i *)(out + dx),
                             _mm_unpacklo_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
        }
        for (; dx < p.dw; dx++) {
            const int16_t *a = &p.alpha[(size_t)dx * 8];
            const uint8_t *q = s + p.xofs[dx];
            int sum = 0;
            for (int k = 0; k < 8; k++) sum += q[k] * a[k];
            out[dx] = sum;
        }
    }
}

// Vertical pass: int32 × int16 → vpmulld, 16 outputs per step, saturating packs clamp to 0..255.
__attribute__((target("avx2"))) int vresize_avx2(const int32_t *const *rows, const int16_t *b, uint8_t *d, int width) {
    __m256i beta[8];
    for (int k = 0; k < 8; k++) beta[k] = _mm256_set1_epi32(b[k]);
    int x = 0;
    for (; x + 16 <= width; x += 16) {
        __m256i s0 = _mm256_set1_epi32(1 << 21), s1 = s0;
        for (int k = 0; k < 8; k++) {
            s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(_mm256_load_si256((const __m256i *)(rows[k] + x)), beta[k]));
            s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(_mm256_load_si256((const __m256i *)(rows[k] + x + 8)), beta[k]));
        }
        __m256i q = _mm256_packs_epi32(_mm256_srai_epi32(s0, 22), _mm256_srai_epi32(s1, 22));
        q = _mm256_permute4x64_epi64(q, 0xD8);  // undo the per-lane interleave of packs
        _mm_storeu_si128((__m128i *)(d + x), _mm_packus_epi16(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)));
    }
    return x;
}
#endif

bool valid_image(const void *p, int w, int h, int stride, int cn) {
    return p && w > 0 && h > 0 && (cn == 1 || cn == 3) && w <= INT_MAX / cn && stride >= w * cn;
}

}  // namespace

extern "C" {

int cvision_lanczos_warp(const uint8_t *src, int width, int height, int stride, int channels, const double m[6],
                         uint8_t *dst, int dst_width, int dst_height, int dst_stride, uint8_t border) {
    // Source positions are int16 in OpenCV's remap, hence the size limit.
    if (!m || !valid_image(src, width, height, stride, channels) ||
        !valid_image(dst, dst_width, dst_height, dst_stride, channels) || width >= SHRT_MAX || height >= SHRT_MAX)
        return -1;
    try {
        // Forward → inverse map, as warpAffine does without WARP_INVERSE_MAP.
        double D = m[0] * m[4] - m[1] * m[3];
        D = D != 0 ? 1. / D : 0;
        const double a00 = m[4] * D, a01 = m[1] * -D, a10 = m[3] * -D, a11 = m[0] * D;
        const double b0 = -a00 * m[2] - a01 * m[5], b1 = -a10 * m[2] - a11 * m[5];

        std::vector<int> delta((size_t)dst_width * 5);  // adelta, bdelta, then the row scratch
        for (int x = 0; x < dst_width; x++) {
            delta[x] = round_to_int(a00 * x * 1024);
            delta[dst_width + x] = round_to_int(a10 * x * 1024);
        }
        const WarpJob job{src, width, height, stride, channels, border, &warp_tables(), delta.data(),
                          delta.data() + dst_width, a01, b0, a11, b1, dst, dst_width, dst_height, dst_stride,
                          delta.data() + 2 * dst_width, delta.data() + 3 * dst_width, delta.data() + 4 * dst_width};
#ifdef CVISION_LANCZOS_X86
        if (use_avx2()) {
            channels == 3 ? warp_rows_avx2<3>(job) : warp_rows_avx2<1>(job);
            return 0;
        }
#endif
        channels == 3 ? warp_rows_scalar<3>(job) : warp_rows_scalar<1>(job);
        return 0;
    } catch (...) {  // std::bad_alloc from the column buffer
        return -1;
    }
}

int cvision_lanczos_resize(const uint8_t *src, int width, int height, int stride, int channels, uint8_t *dst,
                           int dst_width, int dst_height, int dst_stride) {
    if (!valid_image(src, width, height, stride, channels) || !valid_image(dst, dst_width, dst_height, dst_stride, channels))
        return -1;
    const int row_bytes = dst_width * channels;
    if (dst_width == width && dst_height == height) {  // cv::resize copies in this case
        for (int y = 0; y < height; y++)
            std::memmove(dst + (ptrdiff_t)y * dst_stride, src + (ptrdiff_t)y * stride, (size_t)row_bytes);
        return 0;
    }
    try {
        thread_local ResizeScratch scratch;
        const bool avx2 = use_avx2();
        ResizePlan &p = scratch.plan;
        plan_resize(p, width, height, dst_width, dst_height, channels, avx2);

        // Ring rows 64-byte aligned, plus slack for the RGB kernel's 4-int stores.
        const size_t ring_stride = ((size_t)row_bytes + 4 + 15) & ~(size_t)15;
        int32_t *ring = align64(scratch.ring, ring_stride * 16);
        // Source row with pad_l / pad_r replicated pixels, so no tap needs clamping.
        const size_t ext_bytes = (size_t)(p.pad_l + width + p.pad_r) * channels;
        scratch.ext.resize(ext_bytes);
        uint8_t *ext = scratch.ext.data();
        int slot_row[16];
        std::fill(slot_row, slot_row + 16, -1);

        for (int dy = 0; dy < dst_height; dy++) {
            const int32_t *rows[8];
            for (int k = 0; k < 8; k++) {
                const int sy = std::min(std::max(p.yofs[dy] + k, 0), height - 1);
                int32_t *row = ring + (size_t)(sy & 15) * ring_stride;
                if (slot_row[sy & 15] != sy) {
                    const uint8_t *s = src + (ptrdiff_t)sy * stride;
                    std::memcpy(ext + (size_t)p.pad_l * channels, s, (size_t)width * channels);
                    for (int i = 0; i < p.pad_l; i++) std::memcpy(ext + (size_t)i * channels, s, channels);
                    for (int i = 0; i < p.pad_r; i++)
                        std::memcpy(ext + (size_t)(p.pad_l + width + i) * channels, s + (size_t)(width - 1) * channels, channels);
                    const uint8_t *row0 = ext + (size_t)p.pad_l * channels;
#ifdef CVISION_LANCZOS_X86
                    if (avx2) hresize_avx2(p, row0, row);
                    else
#endif
                        hresize_scalar(p, row0, row);
                    slot_row[sy & 15] = sy;
                }
                rows[k] = row;
            }
            const int16_t *b = &p.beta[(size_t)dy * 8];
            uint8_t *d = dst + (ptrdiff_t)dy * dst_stride;
            int x = 0;
#ifdef CVISION_LANCZOS_X86
            if (avx2) x = vresize_avx2(rows, b, d, row_bytes);
#endif
            vresize_scalar(rows, b, d, x, row_bytes);
        }
        return 0;
    } catch (...) {  // std::bad_alloc from the plan or scratch buffers
        return -1;
    }
}

}  // extern "C"
