// CVision: a small C API over OpenCV 4 (warps, resizes) and dlib (HOG face detector, 68-point
// shape predictor). Every function returns 0 on success or -1 with a message readable through
// cvision_last_error() on the same thread; no C++ exception crosses this boundary.
#ifndef PIPELINED_CVISION_H
#define PIPELINED_CVISION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The calling thread's last error message ("" if none).
const char *cvision_last_error(void);

/// cv::warpAffine(src, dst, M, (dw, dh), INTER_LANCZOS4, BORDER_CONSTANT, (border,)*channels):
/// `m` is the 2×3 source→destination matrix, row-major. Packed 8-bit images, `channels` 1 or 3.
int cvision_warp_affine_lanczos(const uint8_t *src, int width, int height, int stride, int channels,
                                const double m[6], uint8_t *dst, int dst_width, int dst_height, int dst_stride,
                                uint8_t border);

/// cv::resize(src, dst, (dw, dh), 0, 0, interpolation) with OpenCV's codes (1 = INTER_LINEAR,
/// 3 = INTER_AREA, 4 = INTER_LANCZOS4).
/// dst = (mask · src + (255 − mask) · dst) / 255 per channel, for packed 3-channel images of n pixels
/// and a packed 3-channel mask whose first channel is used (integer arithmetic, truncating).
void cvision_blend(uint8_t *dst, const uint8_t *src, const uint8_t *mask, int64_t pixels);

int cvision_resize(const uint8_t *src, int width, int height, int stride, int channels,
                   uint8_t *dst, int dst_width, int dst_height, int dst_stride, int interpolation);

/// cv::rotate: code 0 = 90° clockwise, 1 = 180°, 2 = 90° counter-clockwise (dst is w×h swapped for 0/2).
int cvision_rotate(const uint8_t *src, int width, int height, int stride, int channels,
                   uint8_t *dst, int dst_stride, int code);

typedef struct cvision_brisque cvision_brisque;
/// OpenCV contrib's BRISQUE with the given model and range files (e.g. Debian opencv-data's
/// /usr/share/opencv4/quality/brisque_{model,range}_live.yml). NULL on error. One per thread.
cvision_brisque *cvision_brisque_create(const char *model_path, const char *range_path);
void cvision_brisque_destroy(cvision_brisque *scorer);
/// BRISQUE score of a packed RGB image (lower is better; about 0 … 100).
int cvision_brisque_score(cvision_brisque *scorer, const uint8_t *rgb, int width, int height, int stride, double *score);

typedef struct { int32_t left, top, right, bottom; double score; } cvision_rect;

typedef struct cvision_face_detector cvision_face_detector;
/// dlib's HOG frontal face detector (get_frontal_face_detector). One per thread.
cvision_face_detector *cvision_face_detector_create(void);
void cvision_face_detector_destroy(cvision_face_detector *detector);
/// Detects faces in a packed RGB image, upsampling `upsample` times first (0 = none). Writes up to
/// `capacity` rectangles (largest detector score first) and the number found to `count`.
int cvision_detect_faces(cvision_face_detector *detector, const uint8_t *rgb, int width, int height, int stride,
                         int upsample, cvision_rect *out, int capacity, int *count);

typedef struct cvision_shape_predictor cvision_shape_predictor;
/// Loads a dlib shape predictor (e.g. Debian's shape_predictor_68_face_landmarks.dat). NULL on error.
/// `with_reference` also keeps dlib's own evaluator (twice the memory) for
/// cvision_predict_landmarks_dlib, which tests use to check cvision_predict_landmarks against it.
cvision_shape_predictor *cvision_shape_predictor_load(const char *path, int with_reference);
void cvision_shape_predictor_destroy(cvision_shape_predictor *predictor);
/// Number of landmarks the model produces (68 for the iBUG model).
int cvision_shape_predictor_parts(const cvision_shape_predictor *predictor);
/// Landmarks inside `rect` of a packed RGB image, as x0, y0, x1, y1, … (2 × parts floats): the
/// same values as dlib::shape_predictor::operator(), computed faster (see shape_predictor.cpp).
/// Safe to call from several threads on one predictor.
int cvision_predict_landmarks(const cvision_shape_predictor *predictor, const uint8_t *rgb, int width, int height,
                              int stride, cvision_rect rect, float *out, int capacity);
/// The same through dlib::shape_predictor itself (needs `with_reference` at load).
int cvision_predict_landmarks_dlib(const cvision_shape_predictor *predictor, const uint8_t *rgb, int width, int height,
                                   int stride, cvision_rect rect, float *out, int capacity);

// ---- Our own Lanczos-4 kernels (lanczos.cpp): bit-exact to OpenCV 4.6, no OpenCV call, several times
// faster (integer tables, AVX2 chosen at run time, exact scalar fallback). Unlike the functions above
// they do not set cvision_last_error(); -1 only means bad arguments (or out of memory).

/// Bit-exact equivalent of cv::warpAffine(src, dst, M, (dw, dh), INTER_LANCZOS4, BORDER_CONSTANT, border) for
/// packed 8-bit images with 1 or 3 channels (`m` = 2×3 forward matrix, row-major, src→dst; source sides
/// below 32767). Returns 0, or -1 on bad arguments.
int cvision_lanczos_warp(const uint8_t *src, int width, int height, int stride, int channels, const double m[6],
                         uint8_t *dst, int dst_width, int dst_height, int dst_stride, uint8_t border);

/// Bit-exact equivalent of cv::resize(src, dst, (dw, dh), 0, 0, INTER_LANCZOS4) for packed 8-bit images with
/// 1 or 3 channels. Returns 0, or -1 on bad arguments.
int cvision_lanczos_resize(const uint8_t *src, int width, int height, int stride, int channels,
                           uint8_t *dst, int dst_width, int dst_height, int dst_stride);

#ifdef __cplusplus
}
#endif
#endif
