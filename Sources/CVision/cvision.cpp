// The C boundary over OpenCV and dlib: wraps inputs without copying, catches every exception.
#include "cvision.h"
#include "cvision_internal.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/opencv/cv_image.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {
thread_local std::string last_error;
using cvision::guarded;

// The pipeline already runs one item per core; OpenCV's own thread pool on top only adds
// hand-offs for images this small (a 210×280 warp), so its calls stay on the caller's thread.
const bool single_threaded = [] { cv::setNumThreads(0); return true; }();

cv::Mat wrap(const uint8_t *data, int width, int height, int stride, int channels) {
    if (!data || width <= 0 || height <= 0 || (channels != 1 && channels != 3)) throw std::invalid_argument("bad image");
    return cv::Mat(height, width, channels == 3 ? CV_8UC3 : CV_8UC1, const_cast<uint8_t *>(data), size_t(stride));
}
} // namespace

struct cvision_face_detector { dlib::frontal_face_detector detector = dlib::get_frontal_face_detector(); };

void cvision::set_last_error(const std::string &message) { last_error = message; }
void cvision::clear_last_error() { last_error.clear(); }

extern "C" {

const char *cvision_last_error(void) { return last_error.c_str(); }

int cvision_warp_affine_lanczos(const uint8_t *src, int width, int height, int stride, int channels, const double m[6],
                                uint8_t *dst, int dst_width, int dst_height, int dst_stride, uint8_t border) {
    return guarded([&] {
        cv::Mat in = wrap(src, width, height, stride, channels);
        cv::Mat out = wrap(dst, dst_width, dst_height, dst_stride, channels);
        cv::Mat matrix(2, 3, CV_64F, const_cast<double *>(m));
        cv::warpAffine(in, out, matrix, out.size(), cv::INTER_LANCZOS4, cv::BORDER_CONSTANT, cv::Scalar::all(border));
        if (out.data != dst) throw std::runtime_error("warpAffine reallocated its output");
    });
}

int cvision_resize(const uint8_t *src, int width, int height, int stride, int channels, uint8_t *dst, int dst_width,
                   int dst_height, int dst_stride, int interpolation) {
    return guarded([&] {
        cv::Mat in = wrap(src, width, height, stride, channels);
        cv::Mat out = wrap(dst, dst_width, dst_height, dst_stride, channels);
        cv::resize(in, out, out.size(), 0, 0, interpolation);
        if (out.data != dst) throw std::runtime_error("resize reallocated its output");
    });
}

int cvision_rotate(const uint8_t *src, int width, int height, int stride, int channels, uint8_t *dst, int dst_stride, int code) {
    return guarded([&] {
        cv::Mat in = wrap(src, width, height, stride, channels);
        const bool swap = code == cv::ROTATE_90_CLOCKWISE || code == cv::ROTATE_90_COUNTERCLOCKWISE;
        cv::Mat out = wrap(dst, swap ? height : width, swap ? width : height, dst_stride, channels);
        cv::rotate(in, out, code);
        if (out.data != dst) throw std::runtime_error("rotate reallocated its output");
    });
}

cvision_face_detector *cvision_face_detector_create(void) {
    cvision_face_detector *d = nullptr;
    guarded([&] { d = new cvision_face_detector(); });
    return d;
}

void cvision_face_detector_destroy(cvision_face_detector *detector) { delete detector; }

int cvision_detect_faces(cvision_face_detector *detector, const uint8_t *rgb, int width, int height, int stride,
                         int upsample, cvision_rect *out, int capacity, int *count) {
    return guarded([&] {
        if (!detector || !count) throw std::invalid_argument("null detector or count");
        cv::Mat mat = wrap(rgb, width, height, stride, 3);
        dlib::cv_image<dlib::rgb_pixel> image(mat);
        std::vector<dlib::rect_detection> found;
        if (upsample > 0) {
            dlib::array2d<dlib::rgb_pixel> big;
            dlib::assign_image(big, image);
            for (int i = 0; i < upsample; ++i) dlib::pyramid_up(big);
            detector->detector(big, found);
            const double s = double(1 << upsample);
            for (auto &d : found)
                d.rect = dlib::rectangle(long(d.rect.left() / s), long(d.rect.top() / s), long(d.rect.right() / s), long(d.rect.bottom() / s));
        } else {
            detector->detector(image, found);
        }
        std::sort(found.begin(), found.end(), [](auto &a, auto &b) { return a.detection_confidence > b.detection_confidence; });
        *count = int(found.size());
        for (int i = 0; i < std::min(capacity, int(found.size())); ++i) {
            const auto &r = found[i].rect;
            out[i] = cvision_rect{int32_t(r.left()), int32_t(r.top()), int32_t(r.right()), int32_t(r.bottom()), found[i].detection_confidence};
        }
    });
}

} // extern "C"

void cvision_blend(uint8_t *dst, const uint8_t *src, const uint8_t *mask, int64_t pixels) {
    for (int64_t i = 0; i < pixels; ++i) {
        const int m = mask[3 * i];
        if (m == 0) continue;
        for (int c = 0; c < 3; ++c) {
            const int64_t p = 3 * i + c;
            dst[p] = uint8_t((m * src[p] + (255 - m) * dst[p]) / 255);
        }
    }
}
