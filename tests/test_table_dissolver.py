"""Dissolving mixed segments after the splits: a segment whose only own trait is one column's values (members
of several groups living in cities no group favours) goes to the segments its other columns point to; a group
of its own, and a segment that differs from one other segment in a single column, stay."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from portal.errors import TrainingError
from portal.segmentation.table_dissolver import MixedSegmentDissolver
from portal.segmentation.table_model import TableParams, TableSegmentationModel

#: tier rank (1 column), tenure (1), channel one-hot (3), city one-hot (10)
BLOCKS = [[0], [1], [2, 3, 4], list(range(5, 15))]
TENURE = (1.0, 4.0, 7.0)
TIERS = ((0.7, 0.2, 0.1), (0.2, 0.6, 0.2), (0.1, 0.2, 0.7))
CHANNELS = ((0.8, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.1, 0.8))
CITIES = ((0, 1), (2, 3), (4, 5))  # each group's cities; 6-9 are nobody's


def _planted(seed: int, sizes: tuple[int, ...] = (900, 700, 500), strays: float = 0.15
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of three groups, each of its own tenure, tier, channel and cities; ``strays`` of each group live in
    cities 6-9. Returns rows, groups and whether each row is a stray."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(len(sizes)), sizes)
    stray = rng.random(len(group)) < strays
    city = np.where(stray, rng.integers(6, 10, len(group)),
                    np.array([rng.choice(CITIES[g]) for g in group]))
    rows = np.column_stack([
        [rng.choice(3, p=TIERS[g]) for g in group], rng.normal(np.take(TENURE, group), 0.8),
        np.eye(3)[[rng.choice(3, p=CHANNELS[g]) for g in group]], np.eye(10)[city]])
    return rows.astype(np.float32), group, stray


def test_a_segment_of_strays_from_several_groups_is_dissolved_into_their_groups():
    X, group, stray = _planted(1)
    segments = np.where(stray, 3, group)  # the clusterer's island of strays
    dissolver = MixedSegmentDissolver(BLOCKS).fit(X, segments)
    assert list(dissolver.dissolved_) == [3]
    assert dissolver.dissolutions_[0]["block_set_aside"] == 3  # the cities
    assert set(np.unique(dissolver.labels_)) == {0, 1, 2}
    assert np.mean(dissolver.labels_[stray] == group[stray]) >= 0.9
    assert adjusted_rand_score(group, dissolver.labels_) >= 0.9
    assert np.array_equal(dissolver.labels_[~stray], segments[~stray])  # nobody else moves


def test_groups_of_their_own_stay():
    X, group, _ = _planted(2, strays=0.0)
    dissolver = MixedSegmentDissolver(BLOCKS).fit(X, group)
    assert dissolver.dissolved_ == {} and np.array_equal(dissolver.labels_, group)


def test_a_segment_that_differs_from_one_other_in_a_single_column_stays():
    """Like the mall list's high spenders of low and of high income: whether they are one group the columns
    cannot tell, so both stay."""
    X, group, _ = _planted(3, strays=0.0)
    rng = np.random.default_rng(3)
    first = np.flatnonzero(group == 0)
    moved = first[rng.random(len(first)) < 0.5]
    X[moved, 5:15] = np.eye(10)[rng.integers(6, 10, len(moved))]  # half of group 0 lives elsewhere
    segments = group.copy()
    segments[moved] = 3
    dissolver = MixedSegmentDissolver(BLOCKS).fit(X, segments)
    assert 3 not in dissolver.dissolved_


def test_such_a_segment_stays_when_the_clusterer_added_members_of_another_group_to_it():
    """Half of group 0 lives elsewhere, and the clusterer's segment of them also holds a third as many of group
    1's members in group 1's own cities. Those members fit group 1 on every column, cities included: they do not
    make the segment a mixture, and it differs from group 0 in its cities alone, so it stays."""
    X, group, _ = _planted(3, strays=0.0)
    rng = np.random.default_rng(3)
    first = np.flatnonzero(group == 0)
    moved = first[rng.random(len(first)) < 0.5]
    X[moved, 5:15] = np.eye(10)[rng.integers(6, 10, len(moved))]
    second = np.flatnonzero(group == 1)
    added = rng.choice(second, size=int(0.4 * len(moved)), replace=False)  # 28% of the segment
    segments = group.copy()
    segments[moved] = segments[added] = 3
    dissolver = MixedSegmentDissolver(BLOCKS).fit(X, segments)
    assert 3 not in dissolver.dissolved_


def test_segments_to_keep_are_not_dissolved():
    X, group, stray = _planted(4)
    segments = np.where(stray, 3, group)
    dissolver = MixedSegmentDissolver(BLOCKS).fit(X, segments, keep={3})
    assert dissolver.dissolved_ == {}


def test_the_elsewhere_segment_is_dissolved_and_both_paths_serve_without_it(unbalanced_table_model):
    model, frame, truth = unbalanced_table_model
    dissolved = model.dissolve_summary_["dissolved"]
    assert [d["block_set_aside"] for d in dissolved] == ["Location"]
    assert "undone_for_agreement" not in model.dissolve_summary_
    assert adjusted_rand_score(truth, model.labels_) >= 0.85  # 0.79 with the segment, 0.39 before merges
    assert model.fast_path_agreement_ >= 0.97
    gone = {d["segment"] for d in dissolved}
    assert not gone & set(model.cluster_ids_) and not gone & set(model.relabel_.values())
    # the same model's placement on both paths, saved and loaded: tests/test_table_merger.py
    full = model.place_through_reducer(frame)
    assert not gone & set(np.unique(full.cluster_id))



def test_a_dissolution_the_fast_path_cannot_serve_is_undone_before_the_gate_refuses(unbalanced_table_model):
    """A gate no fit can pass: the dissolved segment comes back first (and is recorded so) before the refusal."""
    model, frame, _ = unbalanced_table_model
    strict = TableSegmentationModel(model.schema, TableParams(min_fast_path_agreement=1.01))
    with pytest.raises(TrainingError, match="agrees with the full UMAP path"):
        strict.fit(frame, progress=lambda m: None, features=model.features_)
    assert strict.dissolve_summary_["dissolved"] and strict.dissolve_summary_["undone_for_agreement"] is True
    assert len(strict.cluster_ids_) == len(model.cluster_ids_) + 1
