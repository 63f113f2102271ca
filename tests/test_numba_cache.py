"""UMAP's kernels land in numba's disk cache, so the next process does not compile them again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from portal.settings import PROJECT_ROOT

FIT_TINY_UMAP = """
import numpy as np
from portal.segmentation.library_workarounds.numba_cache import cache_umap_kernels
from portal.segmentation.library_workarounds.neighbours import umap_with_exact_neighbours
assert cache_umap_kernels() > 0
assert cache_umap_kernels() == 0  # a second call finds nothing left to turn on
data = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
model, _ = umap_with_exact_neighbours(data, n_neighbors=10, n_components=2, n_epochs=20, random_state=0)
model.transform(data[:5] + 0.01)
from umap import layouts
# numba's cache key ignores compile flags: the parallel twin of the serial layout kernel must not share it
assert type(layouts._nb_optimize_layout_euclidean_single_epoch_parallel._cache).__name__ == "NullCache"
"""


def test_fit_and_transform_kernels_are_written_to_the_disk_cache(tmp_path: Path):
    cache = tmp_path / "numba_cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(PROJECT_ROOT)}
    subprocess.run([sys.executable, "-c", FIT_TINY_UMAP], env=env, cwd=PROJECT_ROOT, check=True, timeout=300,
                   capture_output=True)
    cached = {path.name.split("-")[0] for path in cache.rglob("*.nbi")}
    # the layout optimisation (most of a fit's compile time) and the transform's membership kernels
    assert "layouts._optimize_layout_euclidean_single_epoch" in cached
    assert "umap_.smooth_knn_dist" in cached
    assert "umap_.compute_membership_strengths" in cached
