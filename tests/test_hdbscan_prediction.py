"""Prediction functions number clusters like ``labels_`` even when a selected cluster has no points of its own."""

from __future__ import annotations

import hdbscan
import numpy as np
import pytest

from portal.segmentation.library_workarounds.hdbscan_prediction import LabelledHDBSCAN, selected_clusters

CLUSTERER = LabelledHDBSCAN


def _two_halves_and_a_far_group(seed: int) -> np.ndarray:
    """Two uniform squares 0.4 apart (one cluster that splits late) and a third square far away."""
    rng = np.random.default_rng(seed)
    return np.vstack([rng.uniform([0, 0], [1, 1], (150, 2)), rng.uniform([1.4, 0], [2.4, 1], (150, 2)),
                      rng.uniform([10, 0], [11, 1], (200, 2))])


def _fit(points: np.ndarray) -> hdbscan.HDBSCAN:
    return CLUSTERER(min_cluster_size=40, min_samples=20, prediction_data=True).fit(points)


def _clusters_without_own_points(clusterer: hdbscan.HDBSCAN) -> list[int]:
    tree = clusterer._condensed_tree
    own = set(tree[tree["child_size"] == 1]["parent"].tolist())
    return [c for c in selected_clusters(tree, clusterer.labels_) if c not in own]


def _lowest_node_per_label(clusterer: hdbscan.HDBSCAN) -> list[int]:
    """What hdbscan 0.8.44 itself takes as each label's cluster."""
    tree = clusterer._condensed_tree
    points = tree[tree["child_size"] == 1]
    return [int(points["parent"][clusterer.labels_[points["child"]] == label].min())
            for label in range(clusterer.labels_.max() + 1)]


@pytest.mark.parametrize("seed, order_swaps", [(1, False), (10, True)])
def test_a_selected_cluster_whose_points_all_fall_out_below_it_keeps_its_label(seed, order_swaps):
    points = _two_halves_and_a_far_group(seed)
    clusterer = _fit(points)
    # the case this module exists for: a selected cluster with no point leaving the tree at its own node;
    # with seed 10 the sub-cluster hdbscan would pick sorts after the other segment, so columns swap
    assert _clusters_without_own_points(clusterer), "fixture no longer produces the case under test"
    lowest = _lowest_node_per_label(clusterer)
    assert (lowest != sorted(lowest)) == order_swaps
    clustered = clusterer.labels_ >= 0
    predicted, strengths = hdbscan.approximate_predict(clusterer, points)
    assert np.array_equal(predicted[clustered], clusterer.labels_[clustered])
    assert np.all(strengths[clustered] > 0)
    vectors = hdbscan.all_points_membership_vectors(clusterer)
    assert vectors.shape[1] == clusterer.labels_.max() + 1
    assert np.array_equal(vectors.argmax(axis=1)[clustered], clusterer.labels_[clustered])
    # membership of new points (what noise rows are reassigned with) follows the fitted labels too
    memberships = hdbscan.membership_vector(clusterer, points[clustered])
    assert np.mean(memberships.argmax(axis=1) == clusterer.labels_[clustered]) > 0.95


def test_selection_is_the_fitted_clusters_on_ordinary_data():
    for seed in range(6):
        clusterer = _fit(_two_halves_and_a_far_group(seed))
        predicted, _ = hdbscan.approximate_predict(clusterer, clusterer._raw_data)
        clustered = clusterer.labels_ >= 0
        assert np.mean(predicted[clustered] == clusterer.labels_[clustered]) == 1.0, seed
