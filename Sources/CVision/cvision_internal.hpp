// Shared by the CVision translation units: the per-thread error slot and the exception guard that
// keeps every C++ exception on this side of the C boundary.
#pragma once
#include <string>

namespace cvision {
void set_last_error(const std::string &message);
void clear_last_error();

template <typename F> int guarded(F &&body) {
    try {
        clear_last_error();
        body();
        return 0;
    } catch (const std::exception &e) {
        set_last_error(e.what());
    } catch (...) {
        set_last_error("unknown C++ exception");
    }
    return -1;
}
} // namespace cvision
