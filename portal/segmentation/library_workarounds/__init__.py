"""Fixes and speed-ups for umap, hdbscan and numba behaviour we depend on; each module says which version."""
