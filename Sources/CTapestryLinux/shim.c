// Constants only; see include/tapestry_linux.h.
