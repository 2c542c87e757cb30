#ifndef COURIER_CZSTD_SHIM_H
#define COURIER_CZSTD_SHIM_H
// libzstd for Courier: in-file binary deltas (zstd's patch-from: the base file as a referenced
// prefix, long-distance matching) and multi-threaded compression. Only the stable API is used.
#include <zstd.h>
#include <zstd_errors.h>
#endif
