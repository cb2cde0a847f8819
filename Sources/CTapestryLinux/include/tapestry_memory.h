#ifndef TAPESTRY_MEMORY_H
#define TAPESTRY_MEMORY_H

/// Fixes glibc's mmap threshold (`mallopt(M_MMAP_THRESHOLD)`, which also stops its dynamic
/// adjustment), so allocations of at least `bytes` get their own mapping and go back to the
/// system when freed. Returns 1 on success. (<malloc.h> is not in Swift's Glibc module.)
int tapestry_fix_mmap_threshold(int bytes);

#endif
