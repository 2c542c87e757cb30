#ifndef COURIER_CZSTD_SHIM_H
#define COURIER_CZSTD_SHIM_H
// libzstd for Courier: in-file binary deltas (zstd's patch-from: the base file as a referenced
// prefix, long-distance matching) and multi-threaded compression. Only the stable API is used.
#include <zstd.h>
#include <zstd_errors.h>
// Swift cannot import these macros (they are expressions).
static const unsigned long long COURIER_ZSTD_CONTENTSIZE_UNKNOWN = ZSTD_CONTENTSIZE_UNKNOWN;
static const unsigned long long COURIER_ZSTD_CONTENTSIZE_ERROR = ZSTD_CONTENTSIZE_ERROR;
#endif
