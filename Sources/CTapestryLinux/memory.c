#include <malloc.h>
#include "tapestry_memory.h"

int tapestry_fix_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
