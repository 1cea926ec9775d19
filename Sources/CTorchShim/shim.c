// CTorchShim is header-only (include/pd_torch.h); SwiftPM needs one source file per C target.
