"""Merges after the clusterer: segments that are only cells of a few-valued column (one gender, one tier) are
merged back into their group; groups that differ by a region or a spread-out column stay apart; both placement
paths answer the merged ids, and releases keep them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from portal.segmentation.table_merger import ValueCellMerger
from portal.segmentation.table_model import TableParams, TableSegmentationModel

#: gender one-hot (2 columns), tier rank (1), tenure (1), city one-hot (6)
BLOCKS = [[0, 1], [2], [3], list(range(4, 10))]


def _rows(gender: np.ndarray, tier: np.ndarray, tenure: np.ndarray, city: np.ndarray) -> np.ndarray:
    return np.column_stack([np.eye(2)[gender], tier, tenure, np.eye(6)[city]]).astype(np.float32)


def _group(rng: np.random.Generator, rows: int, tenure_mean: float, cities: list[int]) -> dict[str, np.ndarray]:
    return {"gender": rng.integers(0, 2, rows), "tier": rng.choice(3, rows, p=[0.6, 0.3, 0.1]),
            "tenure": rng.normal(tenure_mean, 1.0, rows), "city": rng.choice(cities, rows)}


def test_cells_of_gender_and_tier_inside_one_group_are_merged_back():
    rng = np.random.default_rng(3)
    one, other = _group(rng, 1200, 0.0, [0, 1, 2]), _group(rng, 600, 4.0, [3, 4, 5])
    columns = {k: np.concatenate([one[k], other[k]]) for k in one}
    truth = np.repeat([0, 1], [1200, 600])
    # the clusterer's cells: the first group cut into "tier above the first", "first tier, gender 0", "first
    # tier, gender 1"
    cells = np.where(truth == 1, 9, np.where(columns["tier"] > 0, 2, np.where(columns["gender"] == 0, 5, 7)))
    merger = ValueCellMerger(BLOCKS).fit(_rows(**columns), cells)
    assert len(np.unique(merger.labels_)) == 2
    assert adjusted_rand_score(truth, merger.labels_) == 1.0
    assert set(merger.merged_into_) == {5, 7} and set(merger.merged_into_.values()) == {2}
    assert all(set(m["differing_blocks"]) <= {0, 1} for m in merger.merges_)  # gender and tier only


def test_groups_that_differ_by_region_or_a_spread_out_column_stay_apart():
    rng = np.random.default_rng(4)
    # same tenure and mixes, three cities each: a region, not a single value
    east, west = _group(rng, 700, 0.0, [0, 1, 2]), _group(rng, 700, 0.0, [3, 4, 5])
    # same cities, tenure two standard deviations apart
    early, late = _group(rng, 700, 0.0, [0, 1, 2]), _group(rng, 700, 2.0, [0, 1, 2])
    for a, b in ((east, west), (early, late)):
        columns = {k: np.concatenate([a[k], b[k]]) for k in a}
        labels = np.repeat([0, 1], 700)
        third = _group(rng, 300, 8.0, [5])  # a third segment, so merging is not stopped by the minimum
        columns = {k: np.concatenate([columns[k], third[k]]) for k in columns}
        labels = np.concatenate([labels, np.full(300, 2)])
        merger = ValueCellMerger(BLOCKS).fit(_rows(**columns), labels)
        assert merger.merges_ == [] and np.array_equal(merger.labels_, labels)


def test_merging_stops_at_two_segments():
    rng = np.random.default_rng(5)
    one = _group(rng, 1500, 0.0, [0, 1, 2])
    cells = one["gender"] * 10 + one["tier"]  # six cells of one group
    merger = ValueCellMerger(BLOCKS).fit(_rows(**one), cells)
    assert len(np.unique(merger.labels_)) == 2
    assert len(np.unique(ValueCellMerger(BLOCKS, min_segments=1).fit(_rows(**one), cells).labels_)) == 1


def test_a_group_cut_into_cells_is_one_segment_again_on_both_paths(unbalanced_table_model, tmp_path):
    model, frame, truth = unbalanced_table_model
    merges = model.merge_summary_["merges"]
    assert merges, "the clusterer's cells were not merged"
    assert all(set(m["differing"]) <= {"Gender", "Loyalty Tier"} for m in merges)
    assert adjusted_rand_score(truth, model.labels_) >= 0.75  # 0.39 with the clusterer's cells
    merged_away = {m["segment"] for m in merges}
    assert not merged_away & set(model.cluster_ids_)
    assert {model.relabel_[raw] for raw in merged_away} <= set(model.cluster_ids_)
    fast, full = model.place(frame), model.place_through_reducer(frame)
    assert set(np.unique(full.cluster_id)) <= set(model.cluster_ids_)
    assert np.mean(fast.cluster_id == full.cluster_id) >= 0.97
    model.save(tmp_path)
    loaded = TableSegmentationModel.load(tmp_path)
    assert np.array_equal(loaded.place_through_reducer(frame).cluster_id, full.cluster_id)
    loaded.relabel({c: 50 + c for c in loaded.cluster_ids_})
    assert np.array_equal(loaded.place_through_reducer(frame).cluster_id, full.cluster_id + 50)


@pytest.mark.parametrize(("switch", "summary"), [("merge_value_cells", "merge_summary_"),
                                                ("dissolve_mixed", "dissolve_summary_")])
def test_merges_and_dissolving_can_be_turned_off(unbalanced_table_model, switch, summary):
    model, frame, _ = unbalanced_table_model
    plain = TableSegmentationModel(model.schema, TableParams(**{switch: False})).fit(
        frame, progress=lambda m: None, features=model.features_)
    assert getattr(plain, summary) is None
    assert len(plain.cluster_ids_) > len(model.cluster_ids_)
