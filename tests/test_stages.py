"""The clusterer stage's smallest segment: a share of the rows, and smaller shares when it leaves too much noise."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from portal.segmentation.stages import ShareScaledHDBSCAN


@pytest.fixture(scope="module")
def small_groups() -> tuple[np.ndarray, np.ndarray]:
    """Three groups of 500 and five of 150 (6.7% each, under an 8% smallest segment), far apart."""
    X, y = make_blobs(n_samples=[500] * 3 + [150] * 5, n_features=5, cluster_std=1.0, center_box=(-40, 40),
                      random_state=0)
    return X, y


def test_groups_under_the_smallest_segment_fall_into_noise_without_the_fallback(small_groups):
    X, _ = small_groups
    clusterer = ShareScaledHDBSCAN(min_cluster_share=0.08).fit(X)
    assert np.mean(clusterer.labels_ < 0) > 0.15
    assert "noise_by_share" not in clusterer.fitted_sizes_


def test_too_much_noise_refits_with_the_next_smaller_share_and_records_why(small_groups):
    X, y = small_groups
    clusterer = ShareScaledHDBSCAN(min_cluster_share=0.08, max_noise_share=0.15, smaller_shares=(0.06, 0.04)).fit(X)
    noise = np.mean(clusterer.labels_ < 0)
    assert noise <= 0.15
    assert len(clusterer.cluster_ids_) == 8
    assert adjusted_rand_score(y[clusterer.labels_ >= 0], clusterer.labels_[clusterer.labels_ >= 0]) > 0.99
    sizes = clusterer.fitted_sizes_
    assert sizes["min_cluster_share"] in (0.06, 0.04)
    assert sizes["min_cluster_size"] == round(sizes["min_cluster_share"] * len(X))
    assert sizes["noise_by_share"]["0.08"] > 0.15
    assert sizes["noise_by_share"][f"{sizes['min_cluster_share']:g}"] == pytest.approx(noise, abs=1e-4)
    # the density smoothing is the same at every share, and placement uses the kept fit
    assert sizes["min_samples"] == ShareScaledHDBSCAN(min_cluster_share=0.08).min_samples(len(X))
    labels, _ = clusterer.predict_with_strength(X[:50])
    assert set(labels.tolist()) <= set(clusterer.cluster_ids_) | {-1}


def test_a_share_that_leaves_little_noise_is_kept_and_fitted_once(small_groups):
    X, _ = small_groups
    plain = ShareScaledHDBSCAN(min_cluster_share=0.04).fit(X)
    guarded = ShareScaledHDBSCAN(min_cluster_share=0.04, max_noise_share=0.15, smaller_shares=(0.02,)).fit(X)
    np.testing.assert_array_equal(plain.labels_, guarded.labels_)
    assert guarded.fitted_sizes_ == plain.fitted_sizes_


def test_when_no_share_is_under_the_limit_the_least_noisy_fit_is_kept(small_groups):
    X, _ = small_groups
    # 30% of the rows is larger than any group: everything is noise; 12% and 20% leave the five small groups out
    clusterer = ShareScaledHDBSCAN(min_cluster_share=0.3, max_noise_share=0.0001, smaller_shares=(0.12, 0.2)).fit(X)
    tried = clusterer.fitted_sizes_["noise_by_share"]
    assert set(tried) == {"0.3", "0.12", "0.2"}
    assert tried["0.3"] > max(tried["0.12"], tried["0.2"]) > 0.0001
    assert clusterer.fitted_sizes_["min_cluster_share"] == float(min(tried, key=tried.get))
    assert np.mean(clusterer.labels_ < 0) == pytest.approx(min(tried.values()), abs=1e-4)


def test_a_clusterer_pickled_before_the_fallback_loads_with_it_off(small_groups):
    X, _ = small_groups
    old = ShareScaledHDBSCAN(min_cluster_share=0.08).fit(X)
    del old.max_noise_share, old.smaller_shares
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.get_params()["max_noise_share"] is None
    np.testing.assert_array_equal(clone(loaded).fit(X).labels_, old.labels_)
