// Counts calls to malloc, calloc, realloc and posix_memalign in the process it is preloaded into
// (LD_PRELOAD), for timing tools that cannot use ordo-one/benchmark's interposer. The count is
// read through dlsym(RTLD_DEFAULT, "tapestry_malloc_calls").
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

unsigned long tapestry_malloc_calls = 0;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);

// dlsym itself may calloc before real_calloc is known: serve that from a static buffer.
static char bootstrap[4096];
static size_t bootstrap_used = 0;

void *malloc(size_t size) {
    if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc");
    __atomic_fetch_add(&tapestry_malloc_calls, 1, __ATOMIC_RELAXED);
    return real_malloc(size);
}

void *calloc(size_t count, size_t size) {
    if (!real_calloc) {
        static int resolving = 0;
        if (resolving) {
            size_t bytes = (count * size + 15) & ~(size_t)15;
            if (bootstrap_used + bytes > sizeof bootstrap) return NULL;
            void *p = bootstrap + bootstrap_used;
            bootstrap_used += bytes;
            return p;
        }
        resolving = 1;
        real_calloc = dlsym(RTLD_NEXT, "calloc");
        resolving = 0;
    }
    __atomic_fetch_add(&tapestry_malloc_calls, 1, __ATOMIC_RELAXED);
    return real_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    if (!real_realloc) real_realloc = dlsym(RTLD_NEXT, "realloc");
    __atomic_fetch_add(&tapestry_malloc_calls, 1, __ATOMIC_RELAXED);
    return real_realloc(pointer, size);
}

int posix_memalign(void **pointer, size_t alignment, size_t size) {
    if (!real_posix_memalign) real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    __atomic_fetch_add(&tapestry_malloc_calls, 1, __ATOMIC_RELAXED);
    return real_posix_memalign(pointer, alignment, size);
}
