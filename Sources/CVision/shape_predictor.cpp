// 68-point landmarks with dlib's shape-predictor model, evaluated by our own loop that gives
// bit-identical results to dlib::shape_predictor::operator() about three times faster.
//
// Why: dlib's evaluation is bound by memory latency, not arithmetic. Each of the 15 cascades walks
// 500 regression trees and adds one 136-float leaf vector per tree; the leaves (≈65 MB for the iBUG
// model) are scattered, so every addition starts with a cache miss the CPU cannot see coming. Here
// all 500 leaves of a cascade are located first (the split nodes are small and stay in cache), and
// each leaf is prefetched several trees before it is added, so the misses overlap. The additions
// happen in the same order with the same float operations as dlib's, hence identical outputs; the
// feature extraction and the transforms are dlib's own functions. A test compares both on random boxes.
#include "cvision.h"
#include "cvision_internal.hpp"

#include <dlib/image_processing.h>
#include <dlib/opencv/cv_image.h>
#include <opencv2/core.hpp>

#include <cstring>
#include <memory>
#include <vector>

namespace {

struct Cascade {
    struct Split { uint32_t idx1, idx2; float thresh; };
    std::vector<Split> splits;          // all trees' split nodes, tree after tree
    std::vector<uint32_t> split_begin;  // per tree: first split, and its count (= leaves − 1)
    std::vector<uint32_t> split_count;
    std::vector<float> leaves;          // all trees' leaves, [tree][leaf][dimension], contiguous
    std::vector<size_t> leaf_begin;     // per tree: offset of its first leaf in `leaves`
    std::vector<unsigned long> anchor_idx;
    std::vector<dlib::vector<float, 2>> deltas;
};

struct Model {
    dlib::matrix<float, 0, 1> initial_shape;
    std::vector<Cascade> cascades;
    long dimension = 0; // 2 × parts
};

// Reads the file in dlib's serialization order (dlib/image_processing/shape_predictor.h) through
// dlib's own deserializers of the public member types, then flattens each cascade.
std::unique_ptr<Model> load_model(const char *path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(std::string("cannot open landmark model ") + path);
    int version = 0;
    dlib::deserialize(version, in);
    if (version != 1) throw std::runtime_error(std::string(path) + " is not a dlib shape predictor (version " + std::to_string(version) + ")");
    auto model = std::make_unique<Model>();
    std::vector<std::vector<dlib::impl::regression_tree>> forests;
    std::vector<std::vector<unsigned long>> anchor_idx;
    std::vector<std::vector<dlib::vector<float, 2>>> deltas;
    dlib::deserialize(model->initial_shape, in);
    dlib::deserialize(forests, in);
    dlib::deserialize(anchor_idx, in);
    dlib::deserialize(deltas, in);
    model->dimension = model->initial_shape.size();
    if (model->dimension <= 0 || model->dimension % 2 || anchor_idx.size() != forests.size() || deltas.size() != forests.size())
        throw std::runtime_error(std::string(path) + ": inconsistent shape predictor");
    for (size_t c = 0; c < forests.size(); ++c) {
        Cascade cascade;
        for (const auto &tree : forests[c]) {
            if (tree.leaf_values.size() != tree.splits.size() + 1) throw std::runtime_error("shape predictor tree is not complete");
            cascade.split_begin.push_back(uint32_t(cascade.splits.size()));
            cascade.split_count.push_back(uint32_t(tree.splits.size()));
            for (const auto &s : tree.splits) cascade.splits.push_back({uint32_t(s.idx1), uint32_t(s.idx2), s.thresh});
            cascade.leaf_begin.push_back(cascade.leaves.size());
            for (const auto &leaf : tree.leaf_values) {
                if (leaf.size() != model->dimension) throw std::runtime_error("shape predictor leaf has the wrong size");
                cascade.leaves.insert(cascade.leaves.end(), &leaf(0), &leaf(0) + leaf.size());
            }
        }
        for (const auto &s : cascade.splits)
            if (s.idx1 >= deltas[c].size() || s.idx2 >= deltas[c].size()) throw std::runtime_error("shape predictor split out of range");
        cascade.anchor_idx = std::move(anchor_idx[c]);
        cascade.deltas = std::move(deltas[c]);
        model->cascades.push_back(std::move(cascade));
    }
    return model;
}

// How many trees ahead a leaf is prefetched: enough to cover a DRAM miss with the work of
// walking and adding the trees in between.
constexpr size_t prefetch_distance = 8;

inline void prefetch_leaf(const float *leaf, long dimension) {
    const char *p = reinterpret_cast<const char *>(leaf);
    const char *end = reinterpret_cast<const char *>(leaf + dimension);
    for (; p < end; p += 64) __builtin_prefetch(p);
    __builtin_prefetch(end - 1);
}

template <typename image_type>
dlib::full_object_detection predict(const Model &model, const image_type &image, const dlib::rectangle &rect) {
    dlib::matrix<float, 0, 1> shape = model.initial_shape;
    std::vector<float> features;
    std::vector<const float *> chosen;
    const long dim = model.dimension;
    for (const Cascade &cascade : model.cascades) {
        dlib::impl::extract_feature_pixel_values(image, rect, shape, model.initial_shape, cascade.anchor_idx, cascade.deltas, features);
        const size_t trees = cascade.split_begin.size();
        chosen.resize(trees);
        for (size_t t = 0; t < trees; ++t) {
            // dlib's regression_tree::operator(): left child 2i+1 when the difference exceeds the threshold.
            const Cascade::Split *splits = cascade.splits.data() + cascade.split_begin[t];
            const uint32_t n = cascade.split_count[t];
            uint32_t i = 0;
            while (i < n) i = features[splits[i].idx1] - features[splits[i].idx2] > splits[i].thresh ? 2 * i + 1 : 2 * i + 2;
            chosen[t] = cascade.leaves.data() + cascade.leaf_begin[t] + size_t(i - n) * size_t(dim);
        }
        for (size_t t = 0; t < std::min(trees, prefetch_distance); ++t) prefetch_leaf(chosen[t], dim);
        float *s = &shape(0);
        for (size_t t = 0; t < trees; ++t) {
            if (t + prefetch_distance < trees) prefetch_leaf(chosen[t + prefetch_distance], dim);
            const float *leaf = chosen[t];
            for (long k = 0; k < dim; ++k) s[k] += leaf[k];
        }
    }
    const dlib::point_transform_affine to_image = dlib::impl::unnormalizing_tform(rect);
    std::vector<dlib::point> parts(size_t(dim / 2));
    for (size_t i = 0; i < parts.size(); ++i) parts[i] = to_image(dlib::impl::location(shape, i));
    return dlib::full_object_detection(rect, parts);
}

void write_parts(const dlib::full_object_detection &shape, float *out, int capacity) {
    if (capacity < int(shape.num_parts()) * 2) throw std::invalid_argument("landmark buffer too small");
    for (unsigned long i = 0; i < shape.num_parts(); ++i) {
        out[2 * i] = float(shape.part(i).x());
        out[2 * i + 1] = float(shape.part(i).y());
    }
}

cv::Mat wrap_rgb(const uint8_t *rgb, int width, int height, int stride) {
    if (!rgb || width <= 0 || height <= 0) throw std::invalid_argument("bad image");
    return cv::Mat(height, width, CV_8UC3, const_cast<uint8_t *>(rgb), size_t(stride));
}
} // namespace

struct cvision_shape_predictor {
    std::unique_ptr<Model> model;
    std::unique_ptr<dlib::shape_predictor> reference; // only when loaded for comparison
};

extern "C" {

cvision_shape_predictor *cvision_shape_predictor_load(const char *path, int with_reference) {
    cvision_shape_predictor *p = nullptr;
    cvision::guarded([&] {
        auto predictor = std::make_unique<cvision_shape_predictor>();
        predictor->model = load_model(path);
        if (with_reference) {
            predictor->reference = std::make_unique<dlib::shape_predictor>();
            dlib::deserialize(path) >> *predictor->reference;
        }
        p = predictor.release();
    });
    return p;
}

void cvision_shape_predictor_destroy(cvision_shape_predictor *predictor) { delete predictor; }

int cvision_shape_predictor_parts(const cvision_shape_predictor *predictor) {
    return predictor ? int(predictor->model->dimension / 2) : 0;
}

int cvision_predict_landmarks(const cvision_shape_predictor *predictor, const uint8_t *rgb, int width, int height, int stride,
                              cvision_rect rect, float *out, int capacity) {
    return cvision::guarded([&] {
        if (!predictor || !out) throw std::invalid_argument("null predictor or output");
        cv::Mat mat = wrap_rgb(rgb, width, height, stride);
        dlib::cv_image<dlib::rgb_pixel> image(mat);
        write_parts(predict(*predictor->model, image, dlib::rectangle(rect.left, rect.top, rect.right, rect.bottom)), out, capacity);
    });
}

int cvision_predict_landmarks_dlib(const cvision_shape_predictor *predictor, const uint8_t *rgb, int width, int height, int stride,
                                   cvision_rect rect, float *out, int capacity) {
    return cvision::guarded([&] {
        if (!predictor || !out) throw std::invalid_argument("null predictor or output");
        if (!predictor->reference) throw std::invalid_argument("predictor was loaded without dlib's reference evaluator");
        cv::Mat mat = wrap_rgb(rgb, width, height, stride);
        dlib::cv_image<dlib::rgb_pixel> image(mat);
        write_parts((*predictor->reference)(image, dlib::rectangle(rect.left, rect.top, rect.right, rect.bottom)), out, capacity);
    });
}

} // extern "C"
