// OpenCV is C++; this module only carries its pkg-config flags and libraries to CVision.
