"""Splits after the clusterer: a segment holding two groups that differ a little in many columns is split; one
group whose columns rise together (orders, spend, tenure) is not; both placement paths serve the new segments
alike, and releases keep them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from portal.segmentation.table_model import TableParams, TableSegmentationModel
from portal.segmentation.table_refiner import SegmentRefiner
from portal.segmentation.table_splitter import (
    LOCAL_DEPENDENCE,
    SegmentSplitter,
    normalised_mutual_information,
    representative_blocks,
)
from portal.segmentation.table_training import read_training_table

ONE_COLUMN_BLOCKS = [[i] for i in range(8)]


def _two_overlapping_groups(seed: int, rows: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """Two groups whose means are 1.5 standard deviations apart in each of eight independent columns: no single
    column tells them apart (each misplaces 23%), all eight together do (the best rule misplaces 1.7%, ARI 0.93)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], rows)
    X = rng.normal(size=(len(truth), 8)) + 1.5 * truth[:, None]
    return X.astype(np.float32), truth


def _one_correlated_group(seed: int, rows: int = 1600) -> np.ndarray:
    """One group: tenure spread widely, orders proportional to it, spend proportional to orders (the retail
    pattern), and five columns independent of everything."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(60, 1500, rows)
    orders = tenure / 30 * rng.lognormal(0, 0.15, rows)
    spend = orders * 40 * rng.lognormal(0, 0.15, rows)
    rest = rng.normal(size=(rows, 5))
    return np.column_stack([tenure, orders, spend, rest]).astype(np.float32)


def test_a_segment_holding_two_overlapping_groups_is_split():
    X, truth = _two_overlapping_groups(1)
    merged = np.full(len(X), 3)
    splitter = SegmentSplitter(ONE_COLUMN_BLOCKS).fit(X, merged)
    assert len(np.unique(splitter.labels_)) == 2
    assert adjusted_rand_score(truth, splitter.labels_) >= 0.8
    assert splitter.parents_ == {4: 3}
    assert splitter.splits_[0]["segment"] == 3 and splitter.splits_[0]["new_segment"] == 4
    assert splitter.representatives_ == list(range(8))  # independent columns: each weighed on its own


def test_columns_that_rise_together_within_one_group_do_not_split_it():
    X = _one_correlated_group(2)
    one = np.zeros(len(X), dtype=int)
    splitter = SegmentSplitter(ONE_COLUMN_BLOCKS).fit(X, one)
    assert splitter.parents_ == {} and (splitter.labels_ == 0).all()
    assert len(splitter.representatives_) == 6  # tenure, orders and spend weighed as one
    # the reason: with every column weighed on its own, BIC buys segments for the correlation
    naive = SegmentSplitter(ONE_COLUMN_BLOCKS, local_dependence=float("inf")).fit(X, one)
    assert len(np.unique(naive.labels_)) >= 2


def test_splits_stop_at_the_smallest_share_and_the_most_segments():
    X, _ = _two_overlapping_groups(3)
    merged = np.zeros(len(X), dtype=int)
    assert SegmentSplitter(ONE_COLUMN_BLOCKS, min_split_share=0.6).fit(X, merged).parents_ == {}
    assert SegmentSplitter(ONE_COLUMN_BLOCKS, max_segments=1).fit(X, merged).parents_ == {}


def test_splitting_repeats_exactly():
    X, _ = _two_overlapping_groups(4)
    start = np.zeros(len(X), dtype=int)
    first = SegmentSplitter(ONE_COLUMN_BLOCKS).fit(X, start)
    second = SegmentSplitter(ONE_COLUMN_BLOCKS).fit(X, start)
    assert np.array_equal(first.labels_, second.labels_) and first.splits_ == second.splits_


def test_segments_split_from_one_share_its_odds_so_either_path_gives_the_same_answer():
    X, truth = _two_overlapping_groups(7)
    labels = truth + 3  # segment 4 was split from segment 3
    refiner = SegmentRefiner(ONE_COLUMN_BLOCKS).fit(X, labels, {4: 3})
    by_clusterer, _ = refiner.predict(X, np.full(len(X), 3))  # the full path answers the clusterer's segment
    by_vote, _ = refiner.predict(X, np.full(len(X), 4))  # the fast path may answer the split-off one
    assert np.array_equal(by_clusterer, by_vote)
    assert adjusted_rand_score(truth, by_clusterer) >= 0.8
    # without the family, the answer given leans the segment chosen
    plain = SegmentRefiner(ONE_COLUMN_BLOCKS).fit(X, labels)
    assert not np.array_equal(plain.predict(X, np.full(len(X), 3))[0], plain.predict(X, np.full(len(X), 4))[0])
    refiner.relabel({3: 10, 4: 11})
    assert refiner.families_ == {11: 10}


def test_normalised_mutual_information_matches_an_independent_computation():
    from scipy.stats import entropy
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, 3000)
    b = np.where(rng.random(3000) < 0.4, a, rng.integers(0, 9, 3000))
    bias = (6 - 1) * (9 - 1) / (2 * 3000)
    mean_entropy = (entropy(np.bincount(a)) + entropy(np.bincount(b))) / 2
    expected = (mutual_info_score(a, b) - bias) / mean_entropy
    assert normalised_mutual_information(a, b) == pytest.approx(expected, abs=1e-9)
    assert normalised_mutual_information(a, np.zeros(3000, int)) == 0.0


def test_the_bias_correction_keeps_unrelated_wide_blocks_apart():
    """Thirty categories against ten bands in 400 rows, drawn independently: plain normalised mutual information
    is near 0.14 by chance alone, above the link threshold; the corrected one stays under half of it."""
    for seed in range(6, 12):
        rng = np.random.default_rng(seed)
        wide, narrow = rng.integers(0, 30, 400), rng.integers(0, 10, 400)
        assert normalized_mutual_info_score(wide, narrow) > LOCAL_DEPENDENCE
        assert normalised_mutual_information(wide, narrow) < LOCAL_DEPENDENCE / 2


def test_representatives_one_per_group_of_linked_blocks():
    dependence = np.array([[0, 0.3, 0.0, 0.0], [0.3, 0, 0.2, 0.0], [0.0, 0.2, 0, 0.01], [0.0, 0.0, 0.01, 0]])
    assert representative_blocks(dependence, 0.1) == [1, 3]  # 0-1-2 linked (1 the most dependent), 3 alone
    assert representative_blocks(dependence, 0.5) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def split_model(tmp_path_factory) -> tuple[TableSegmentationModel, pd.DataFrame, np.ndarray]:
    """A table of three groups, two of which overlap in every column (1.3 standard deviations apart in six)."""
    rng = np.random.default_rng(11)
    truth = np.repeat([0, 1, 2], [900, 700, 700])
    means = np.array([[0.0] * 6, [1.3] * 6, [5.0, -5.0, 5.0, -5.0, 5.0, -5.0]])
    values = rng.normal(size=(len(truth), 6)) * 10 + 10 * means[truth]
    frame = pd.DataFrame(values.round(2), columns=[f"Score {c}" for c in "ABCDEF"])
    frame.insert(0, "Customer ID", [f"C{100000 + i}" for i in range(len(frame))])
    path = tmp_path_factory.mktemp("split") / "planted.csv"
    frame.to_csv(path, index=False)
    data = read_training_table(path, progress=lambda m: None)
    model = TableSegmentationModel(data.schema, TableParams()).fit(data.frame, progress=lambda m: None)
    return model, frame, truth


def test_the_full_path_serves_split_segments_as_the_fast_path_does(split_model, tmp_path):
    model, frame, truth = split_model
    assert model.families_, "the two overlapping groups were not split"
    assert adjusted_rand_score(truth, model.labels_) >= 0.8
    assert model.fast_path_agreement_ >= 0.97
    assert set(model.families_.values()) <= set(model.clusterer_ids_)
    fast, full = model.place(frame), model.place_through_reducer(frame)
    assert np.mean(fast.cluster_id == full.cluster_id) >= 0.97
    # the release keeps the splits, and a relabelled model answers the new ids on both paths
    model.save(tmp_path)
    loaded = TableSegmentationModel.load(tmp_path)
    assert loaded.families_ == model.families_ and loaded.clusterer_ids_ == model.clusterer_ids_
    assert np.array_equal(loaded.place(frame).cluster_id, fast.cluster_id)
    mapping = {c: 100 + c for c in loaded.cluster_ids_}
    loaded.relabel(mapping)
    assert np.array_equal(loaded.place_through_reducer(frame).cluster_id, full.cluster_id + 100)
    assert set(loaded.families_) == {mapping[c] for c in model.families_}


def test_a_release_saved_before_splits_existed_loads_without_them(split_model, tmp_path):
    import joblib

    from portal.segmentation.table_model import TABLE_STATE_FILE

    model, frame, _ = split_model
    model.save(tmp_path)
    state = joblib.load(tmp_path / TABLE_STATE_FILE)
    for name in ("families_", "clusterer_ids_"):
        state.pop(name)
    joblib.dump(state, tmp_path / TABLE_STATE_FILE)
    loaded = TableSegmentationModel.load(tmp_path)
    assert loaded.families_ == {} and loaded.clusterer_ids_ == loaded.cluster_ids_
    assert len(loaded.place(frame).cluster_id) == len(frame)


@pytest.mark.filterwarnings("error")  # and quietly: no warning reaches the training log
def test_segments_with_nothing_to_split_are_left_whole():
    identical = np.zeros((300, 2), dtype=np.float32)
    assert SegmentSplitter([[0], [1]]).fit(identical, np.zeros(300, int)).parents_ == {}
    # one feature block: no pair to link, and one unimodal column holds no second group
    one_column = np.random.default_rng(8).normal(size=(500, 1)).astype(np.float32)
    splitter = SegmentSplitter([[0]]).fit(one_column, np.zeros(500, int))
    assert splitter.parents_ == {} and splitter.representatives_ == [0]
