"""The refining stage: customers the clusterer placed by one misleading column go to the segment every other
column points to; a row with no evidence keeps the clusterer's segment; fits repeat; releases keep it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from portal.segmentation.sample_data import write_sample
from portal.segmentation.table_model import REFINER_FILE, TableParams, TableSegmentationModel
from portal.segmentation.table_refiner import SegmentRefiner
from portal.segmentation.table_training import TableData, read_training_table

GROUP_ROWS = 600
STRAY_SHARE = 0.1


def _planted_strays(seed: int) -> tuple[np.ndarray, list[list[int]], np.ndarray, np.ndarray, np.ndarray]:
    """Three groups told apart by four numbers; each group lives in four of twelve 'cities' (one-hot, columns
    4-15), and a tenth of every group in a city of another group. The upstream labels follow the city, as
    UMAP's islands did."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), GROUP_ROWS)
    signs = np.array([[1, 1, -1, -1], [-1, 1, 1, -1], [1, -1, 1, 1]])
    numbers = rng.normal(size=(len(truth), 4)) + 1.5 * signs[truth]
    stray = rng.random(len(truth)) < STRAY_SHARE
    home = np.where(stray, (truth + rng.integers(1, 3, len(truth))) % 3, truth)
    city = home * 4 + rng.integers(0, 4, len(truth))
    X = np.hstack([numbers, np.eye(12)[city]]).astype(np.float32)
    blocks = [[0], [1], [2], [3], list(range(4, 16))]
    return X, blocks, truth, home, stray


def test_customers_placed_by_a_misleading_column_move_to_the_segment_their_other_columns_point_to():
    X, blocks, truth, upstream, stray = _planted_strays(3)
    refiner = SegmentRefiner(blocks).fit(X, upstream)
    moved_right = np.mean(refiner.labels_[stray] == truth[stray])
    kept = np.mean(refiner.labels_[~stray] == upstream[~stray])
    assert moved_right >= 0.9, f"only {moved_right:.0%} of the strays went to their group"
    assert kept >= 0.98, f"{1 - kept:.1%} of the customers the clusterer placed right were moved"
    assert adjusted_rand_score(truth, refiner.labels_) > adjusted_rand_score(truth, upstream) + 0.15
    assert 0 < refiner.moved_share_ < 0.2
    # new rows of the same structure are placed the same way
    fresh, _, fresh_truth, fresh_upstream, fresh_stray = _planted_strays(4)
    placed, posterior = refiner.predict(fresh, fresh_upstream)
    assert np.mean(placed[fresh_stray] == fresh_truth[fresh_stray]) >= 0.9
    assert ((posterior > 0) & (posterior <= 1)).all()


def test_a_row_with_no_evidence_keeps_the_segment_it_was_given():
    X, blocks, _, upstream, _ = _planted_strays(5)
    refiner = SegmentRefiner([blocks[-1]]).fit(X, upstream)
    unseen = np.zeros((3, X.shape[1]), dtype=np.float32)
    unseen[:, 4:] = 0.25  # a city pattern no fitted row had
    for segment in range(3):
        placed, _ = refiner.predict(unseen, np.full(3, segment))
        assert (placed == segment).all()


def test_the_clusterer_segment_counts_as_upstream_odds_times_as_likely():
    """Two segments the columns cannot tell apart: a row stays where it was given, whichever that is; with the
    odds at 1 the columns' (equal) evidence and the segment sizes decide."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)).astype(np.float32)
    given = rng.integers(0, 2, 400)
    placed, _ = SegmentRefiner([[0], [1]], upstream_odds=1e6).fit(X, given).predict(X, given)
    assert (placed == given).all()
    even = SegmentRefiner([[0], [1]], upstream_odds=1.0).fit(X, given)
    assert len(np.unique(even.labels_)) <= 2 and even.moved_share_ > 0.1


def test_refining_repeats_exactly_and_relabels():
    X, blocks, _, upstream, _ = _planted_strays(6)
    first, second = SegmentRefiner(blocks).fit(X, upstream + 10), SegmentRefiner(blocks).fit(X, upstream + 10)
    assert np.array_equal(first.labels_, second.labels_)
    before, _ = first.predict(X[:50], upstream[:50] + 10)
    first.relabel({10: 7, 11: 3, 12: 9})
    after, _ = first.predict(X[:50], np.array([{10: 7, 11: 3, 12: 9}[u] for u in upstream[:50] + 10]))
    assert list(after) == [{10: 7, 11: 3, 12: 9}[b] for b in before]


@pytest.fixture(scope="module")
def bundled_sample(tmp_path_factory) -> tuple[TableData, np.ndarray]:
    """The bundled sample as ``flask train`` reads a file of it as a table, and each row's planted group."""
    path = write_sample(tmp_path_factory.mktemp("bundled") / "customers.csv", 5000, seed=42)
    answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"))
    data = read_training_table(path, progress=lambda m: None)
    assert len(data.frame) == len(answers)
    return data, answers["true_group"].to_numpy()


def test_the_bundled_loyalty_sample_through_the_learned_schema_path_reaches_ari_090(bundled_sample):
    """The bundled sample trained as a table of its own columns: 0.85 without the refining stage."""
    data, truth = bundled_sample
    model = TableSegmentationModel(data.schema).fit(data.frame, progress=lambda m: None)
    assert adjusted_rand_score(truth, model.labels_) >= 0.9
    assert model.fast_path_agreement_ >= 0.97


def test_a_release_keeps_the_stage_and_one_saved_before_it_places_without_it(tmp_path, bundled_sample):
    data, _ = bundled_sample
    frame = data.frame.iloc[:1500]
    model = TableSegmentationModel(data.schema, TableParams()).fit(frame, progress=lambda m: None)
    (tmp_path / "new").mkdir()
    assert REFINER_FILE in model.save(tmp_path / "new")
    loaded = TableSegmentationModel.load(tmp_path / "new")
    assert np.array_equal(loaded.place(frame).cluster_id, model.place(frame).cluster_id)
    assert np.array_equal(model.place(frame).cluster_id, model.labels_)
    (tmp_path / "new" / REFINER_FILE).unlink()
    older = TableSegmentationModel.load(tmp_path / "new")
    assert older.refiner_ is None and model.refiner_ is not None and model.refiner_.moved_share_ > 0
    unrefined = older.place(frame).cluster_id
    assert np.mean(unrefined == older.vote_labels_) >= 0.99
    assert not np.array_equal(unrefined, model.labels_)
