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
from collections import Counter

log = logging.getLogger(__name__)

#: The umap modules holding the kernels fit and transform run (plotting and parametric UMAP excluded:
#: they need optional packages).
UMAP_KERNEL_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse",
                       "umap.spectral")


def cache_umap_kernels() -> int:
    """Turn on numba's disk cache for every umap kernel not already cached; returns how many it turned
    on (0 on later calls, so calling it again is cheap).

    numba's cache key does not include compile flags, so of kernels sharing one Python function (umap's
    serial and parallel layout kernels) only the one compiled without ``parallel`` is cached; the other
    never writes there and never reads the serial code. A cache folder numba cannot write leaves the
    kernels compiling as before.
    """
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    found = {id(kernel): kernel for name in UMAP_KERNEL_MODULES  # modules re-export each other's kernels
             for kernel in vars(importlib.import_module(name)).values() if isinstance(kernel, Dispatcher)}
    kernels = list(found.values())
    per_function = Counter(id(kernel.py_func) for kernel in kernels)
    serial_per_function = Counter(id(kernel.py_func) for kernel in kernels if not kernel.targetoptions.get("parallel"))

    def cacheable(kernel: Dispatcher) -> bool:
        if per_function[id(kernel.py_func)] == 1:
            return True
        return not kernel.targetoptions.get("parallel") and serial_per_function[id(kernel.py_func)] == 1

    enabled = 0
    for kernel in kernels:
        if isinstance(getattr(kernel, "_cache", None), NullCache) and cacheable(kernel):
            try:
                kernel.enable_caching()
            except RuntimeError as exc:  # no writable cache location
                log.warning("numba cannot cache umap kernels (%s); they compile in every process", exc)
                return enabled
            enabled += 1
    if enabled:
        log.debug("numba disk cache enabled for %d umap kernels", enabled)
    return enabled
