#ifndef COURIER_CARCHIVE_SHIM_H
#define COURIER_CARCHIVE_SHIM_H
// libarchive for Courier. Swift cannot import the AE_IF* macros (they expand to casts),
// so they are re-exported as constants; everything else is used as libarchive declares it.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

static const unsigned int COURIER_AE_IFMT   = 0170000;
static const unsigned int COURIER_AE_IFREG  = 0100000;
static const unsigned int COURIER_AE_IFLNK  = 0120000;
static const unsigned int COURIER_AE_IFSOCK = 0140000;
static const unsigned int COURIER_AE_IFCHR  = 0020000;
static const unsigned int COURIER_AE_IFBLK  = 0060000;
static const unsigned int COURIER_AE_IFDIR  = 0040000;
static const unsigned int COURIER_AE_IFIFO  = 0010000;

#endif
