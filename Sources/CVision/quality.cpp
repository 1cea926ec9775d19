// BRISQUE image quality through OpenCV contrib's quality module (the LIVE model files ship in
// Debian's opencv-data). The model is loaded once per scorer; scoring is not shared across threads.
#include "cvision.h"
#include "cvision_internal.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/quality/qualitybrisque.hpp>

struct cvision_brisque { cv::Ptr<cv::quality::QualityBRISQUE> model; };

extern "C" {

cvision_brisque *cvision_brisque_create(const char *model_path, const char *range_path) {
    cvision_brisque *b = nullptr;
    cvision::guarded([&] {
        if (!model_path || !range_path) throw std::invalid_argument("null model path");
        auto scorer = std::make_unique<cvision_brisque>();
        scorer->model = cv::quality::QualityBRISQUE::create(model_path, range_path);
        if (!scorer->model) throw std::runtime_error(std::string("cannot load BRISQUE model ") + model_path);
        b = scorer.release();
    });
    return b;
}

void cvision_brisque_destroy(cvision_brisque *scorer) { delete scorer; }

int cvision_brisque_score(cvision_brisque *scorer, const uint8_t *rgb, int width, int height, int stride, double *score) {
    return cvision::guarded([&] {
        if (!scorer || !rgb || !score || width <= 0 || height <= 0) throw std::invalid_argument("bad BRISQUE arguments");
        cv::Mat image(height, width, CV_8UC3, const_cast<uint8_t *>(rgb), size_t(stride));
        // BRISQUE works on grey levels; OpenCV's conversion expects BGR order.
        cv::Mat bgr;
        cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
        *score = scorer->model->compute(bgr)[0];
    });
}

} // extern "C"
