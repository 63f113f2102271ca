"""Let numba cache UMAP's compiled kernels on disk, so a fresh process does not recompile them.

umap-learn declares its numba kernels (layout optimisation, fuzzy simplicial set, …) without
``cache=True``, so every new process (each retraining child, ``flask train``, each gunicorn worker's
warm-up) compiled them again: about 5 s of a 5,000-row fit. ``Dispatcher.enable_caching`` is what
``cache=True`` does at decoration time; calling it once at start-up stores the machine code in
``NUMBA_CACHE_DIR`` and reuses it after. Kernels numba cannot cache (it says so in a warning) simply
keep compiling, as before.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

#: The umap modules holding the kernels fit and transform run (plotting and parametric UMAP excluded:
#: they need optional packages).
UMAP_KERNEL_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse",
                       "umap.spectral")


def cache_umap_kernels() -> int:
    """Turn on numba's disk cache for every umap kernel not already cached; returns how many it turned
    on (0 on later calls, so calling it again is cheap)."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    enabled = 0
    for name in UMAP_KERNEL_MODULES:
        for kernel in vars(importlib.import_module(name)).values():
            if isinstance(kernel, Dispatcher) and isinstance(kernel._cache, NullCache):
                kernel.enable_caching()
                enabled += 1
    if enabled:
        log.debug("numba disk cache enabled for %d umap kernels", enabled)
    return enabled
