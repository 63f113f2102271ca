"""Stable segment ids: matching a new fit's clusters to the live segments, and ids through real retraining."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portal.segmentation.model import relabelled
from portal.segmentation.segment_ids import SegmentIds, fresh_ids, keeps_name, match_segments
from tests.conftest import TRAINING_ROWS


def _labels(*parts: tuple[int, int]) -> np.ndarray:
    """A label vector from (label, count) runs."""
    return np.concatenate([np.full(count, label) for label, count in parts])


def _segment(ids: SegmentIds, stable: int) -> dict:
    return next(s for s in ids.segments if s["id"] == stable)


# -- matching on constructed label vectors -----------------------------------------------------

def test_a_renumbered_fit_keeps_every_id() -> None:
    old = _labels((0, 300), (1, 200), (2, 100))
    new = _labels((2, 300), (0, 200), (1, 100))  # the same segments, numbered afresh

    ids = match_segments(new, old, [0, 1, 2], next_id=3)

    assert ids.mapping == {2: 0, 0: 1, 1: 2}
    assert np.array_equal(relabelled(new, ids.mapping), old)
    assert ids.customers_kept_share == 1.0 and ids.vanished == [] and ids.next_id == 3
    assert [s["status"] for s in ids.segments] == ["kept"] * 3


def test_a_split_keeps_the_id_on_the_part_holding_most_of_the_segment() -> None:
    old = _labels((0, 600), (1, 400))
    new = _labels((5, 400), (6, 200), (7, 400))  # segment 0 split 400 / 200

    ids = match_segments(new, old, [0, 1], next_id=2)

    assert ids.mapping == {5: 0, 6: 2, 7: 1}
    split = _segment(ids, 2)
    assert split["status"] == "new" and split["note"] == "split from segment 0"
    assert split["from"] == [{"id": 0, "share": 1.0}]
    assert _segment(ids, 0)["share_of_previous"] == pytest.approx(400 / 600, abs=1e-4)
    assert ids.vanished == []


def test_a_split_into_three_even_parts_gives_new_ids_and_reports_the_segment_vanished() -> None:
    old = _labels((0, 300), (1, 300))
    new = _labels((0, 100), (1, 100), (2, 100), (3, 300))

    ids = match_segments(new, old, [0, 1], next_id=2)

    assert ids.mapping[3] == 1
    assert sorted(ids.mapping[k] for k in (0, 1, 2)) == [2, 3, 4]
    assert [v["id"] for v in ids.vanished] == [0]
    assert ids.vanished[0]["note"] == "split into segments 2, 3, 4"


def test_a_merge_keeps_the_id_of_the_larger_part_and_reports_the_other_merged() -> None:
    old = _labels((0, 300), (1, 200), (2, 500))
    new = _labels((4, 500), (9, 500))  # 0 and 1 merged

    ids = match_segments(new, old, [0, 1, 2], next_id=3)

    assert ids.mapping == {4: 0, 9: 2}
    assert _segment(ids, 0)["note"] == "kept; merged with segment 1"
    assert ids.vanished == [{"id": 1, "went_to": [{"id": 0, "share": 1.0}], "note": "merged into segment 0"}]


def test_an_even_merge_is_a_new_segment_and_both_parts_vanish_into_it() -> None:
    old = _labels((0, 250), (1, 250), (2, 500))
    new = _labels((0, 500), (1, 500))

    ids = match_segments(new, old, [0, 1, 2], next_id=3)

    assert ids.mapping == {0: 3, 1: 2}
    assert _segment(ids, 3)["note"] == "merge of segments 0, 1"
    assert [(v["id"], v["note"]) for v in ids.vanished] == [(0, "merged into segment 3"), (1, "merged into segment 3")]


def test_new_ids_never_reuse_an_id_of_earlier_releases() -> None:
    old = _labels((0, 500), (1, 500))
    new = _labels((0, 500), (1, 250), (2, 250))

    ids = match_segments(new, old, [0, 1], next_id=12)  # ids up to 11 were used by releases kept on disk

    assert ids.mapping == {0: 0, 1: 12, 2: 13} and ids.next_id == 14
    assert fresh_ids(new, 12, "no live release").mapping == {0: 12, 1: 13, 2: 14}


def test_noise_is_left_out_of_the_matching_and_stays_noise() -> None:
    old = _labels((0, 400), (1, 400))
    new = np.concatenate([_labels((3, 380), (-1, 20)), _labels((4, 400))])

    ids = match_segments(new, old, [0, 1], next_id=2)

    assert ids.mapping == {3: 0, 4: 1} and ids.rows_compared == 780
    assert (relabelled(new, ids.mapping) == -1).sum() == 20


def test_a_live_segment_absent_from_the_new_rows_is_reported_vanished() -> None:
    ids = match_segments(_labels((0, 100)), _labels((1, 100)), [0, 1], next_id=2)

    assert ids.mapping == {0: 1}
    assert ids.vanished == [{"id": 0, "went_to": [], "note": "none of the new training customers is in it"}]


# -- names ---------------------------------------------------------------------------------------

def _persona(name: str, *keys: str) -> dict:
    return {"name": name, "distinguishing_traits": [{"trait": k, "key": k} for k in keys]}


def test_a_kept_name_survives_small_trait_changes_but_not_large_ones() -> None:
    before = _persona("Central Premium Regulars", "Region: Central", "Loyalty Tier: Platinum", "Tenure: 3–6 years")
    assert keeps_name(before, _persona("Central Premium Loyal veterans", "Region: Central", "Loyalty Tier: Platinum"))
    assert not keeps_name(before, _persona("East Value-seeking Newcomers", "Region: East", "Tenure: 3–6 years"))


def test_a_kept_name_is_dropped_when_one_of_its_traits_now_points_the_other_way() -> None:
    before = _persona("High Total Spend · Channel: Online", "Channel Online", "High Total Spend")
    assert keeps_name(before, _persona("Channel: Online · Recent Last Purchase", "Channel Online", "High Total Spend",
                                       "Recent Last Purchase"))
    assert not keeps_name(before, _persona("Channel: Online · Low Total Spend", "Channel Online", "Low Total Spend"))
    # a name carried over an earlier release whose traits have since turned: the live persona already says
    # "Low", and its carried name still says "High"
    carried = _persona("High Total Spend · Channel: Online", "Channel Online", "Low Total Spend (EUR)")
    assert not keeps_name(carried, _persona("Channel: Online · Low Total Spend", "Channel Online",
                                            "Low Total Spend (EUR)"))


def test_names_are_carried_unless_the_traits_changed_and_a_clashing_fresh_name_gets_its_id() -> None:
    ids = match_segments(_labels((0, 600), (1, 400)), _labels((1, 600), (0, 400)), [0, 1], next_id=2)
    ids.previous_personas = {1: _persona("Island-wide Established Regulars", "Tier: Gold"),
                             0: _persona("West Newcomers", "Region: West")}
    fresh = {1: _persona("Central Premium Regulars", "Tier: Gold"),
             0: _persona("Island-wide Established Regulars", "Region: East")}
    profiles = pd.DataFrame({"cluster_id": [0, 1], "name": ["Island-wide Established Regulars",
                                                            "Central Premium Regulars"]})

    named, profiles = ids.name(fresh, profiles)

    assert ids.mapping == {0: 1, 1: 0}
    assert named[1]["name"] == "Island-wide Established Regulars"
    assert named[0]["name"] == "Island-wide Established Regulars (segment 0)"
    assert _segment(ids, 0)["name_kept"] is False and _segment(ids, 0)["previous_name"] == "West Newcomers"
    assert profiles["name"].tolist() == [named[0]["name"], named[1]["name"]]


# -- through real training -------------------------------------------------------------------

@pytest.fixture(scope="module")
def training_customers(training_file: Path) -> pd.DataFrame:
    from portal.ingestion.reader import read_customer_file

    return read_customer_file(training_file).frame


def _more_customers(path: Path, rows: int, seed: int) -> Path:
    """Customers of the same population as the session's file, with ids of their own."""
    from portal.segmentation.sample_data import generate_customers

    customers, _ = generate_customers(rows=rows, seed=seed)
    customers["Customer ID"] = [f"NEW{i:06d}" for i in range(rows)]
    customers.to_csv(path, index=False)
    return path


def _retrain(tmp_path_factory, trained_release: Path, files: list[Path], seed: int = 42) -> Path:
    from portal.segmentation import releases
    from portal.segmentation.model import SegmentationParams
    from portal.segmentation.stages import ExactNeighbourUMAP
    from portal.segmentation.training import train_release

    production = tmp_path_factory.mktemp("retrained")
    staging, manifest, _ = train_release(files, production, params=SegmentationParams(random_state=seed),
                                         reducer=ExactNeighbourUMAP(random_state=seed), live=trained_release)
    return releases.publish_release(staging, production, manifest["version"])


@pytest.fixture(scope="module")
def reseeded(tmp_path_factory, trained_release: Path, training_file: Path) -> Path:
    """The session's customers fitted again with another random seed, the session's release live."""
    return _retrain(tmp_path_factory, trained_release, [training_file], seed=7)


@pytest.fixture(scope="module")
def grown(tmp_path_factory, trained_release: Path, training_file: Path) -> Path:
    """The session's customers plus 20% new ones of the same population, the session's release live."""
    extra = _more_customers(tmp_path_factory.mktemp("extra") / "more.csv", TRAINING_ROWS // 5, seed=12)
    return _retrain(tmp_path_factory, trained_release, [training_file, extra])


def _placed(release_dir: Path, customers: pd.DataFrame) -> np.ndarray:
    from portal.serving.live_model import load_release

    return load_release(release_dir, warm_up=False).model.place(customers).cluster_id


def test_another_seed_keeps_at_least_95_percent_of_customers_under_their_id(
        reseeded, trained_release, training_customers) -> None:
    before, after = _placed(trained_release, training_customers), _placed(reseeded, training_customers)

    assert np.mean(before == after) >= 0.95
    manifest = json.loads((reseeded / "manifest.json").read_text())
    assert manifest["segment_ids"]["compared_with"] == trained_release.name
    assert manifest["segment_ids"]["customers_kept_share"] >= 0.95


def test_twenty_percent_new_customers_keep_every_segment_under_its_id_and_name(grown, trained_release,
                                                                               training_customers) -> None:
    before = json.loads((trained_release / "cluster_personas.json").read_text())
    after = json.loads((grown / "cluster_personas.json").read_text())
    lineage = json.loads((grown / "manifest.json").read_text())["segment_ids"]

    assert lineage["counts"]["vanished"] == 0 and lineage["vanished"] == []
    assert {k: p["name"] for k, p in after.items() if k in before} == {k: p["name"] for k, p in before.items()}
    kept = {s["id"]: s for s in lineage["segments"] if s["status"] == "kept"}
    assert set(kept) == {int(k) for k in before}
    assert all(s["share_of_segment"] > 0.5 and s["share_of_previous"] > 0.5 for s in kept.values())
    assert np.mean(_placed(trained_release, training_customers) == _placed(grown, training_customers)) >= 0.95


def test_every_consumer_of_a_relabelled_model_answers_the_new_ids(trained_release, training_customers,
                                                                  tmp_path) -> None:
    from portal.segmentation.features import placement_keys
    from portal.segmentation.model import SegmentationModel

    model = SegmentationModel.load(trained_release)
    keys = placement_keys(training_customers.head(300))
    before_table, before_full = model.place_keys(keys).cluster_id, model.place_through_reducer(keys)
    shift = {c: c + 10 for c in model.cluster_ids_}

    model.relabel(shift)
    model.save(tmp_path)
    reloaded = SegmentationModel.load(tmp_path)

    assert np.array_equal(reloaded.place_keys(keys).cluster_id, before_table + 10)
    assert [a[0] for a in reloaded.place_through_reducer(keys)] == [a[0] + 10 for a in before_full]
    assert sorted(reloaded.cluster_ids_) == sorted(shift.values())
    assert {answer[0] for answer in reloaded.key_table_.values()} <= set(shift.values())


# -- the routes ------------------------------------------------------------------------------

@pytest.fixture
def grown_live(workspace, grown, make_app):
    """An app whose live release is ``grown``, with the session's release kept before it."""
    from portal.segmentation import releases

    copy = workspace["production_models"] / grown.name
    shutil.copytree(grown, copy)
    releases.set_live(workspace["model"], copy)
    return make_app().test_client()


def test_model_changes_shows_the_mapping_of_the_live_release(grown_live, trained_release) -> None:
    body = grown_live.get("/model/changes").get_json()

    assert body["status"] == "ok" and body["compared_with"] == trained_release.name
    assert body["method"] == "placement" and body["customers_kept_share"] >= 0.95
    assert {s["status"] for s in body["segments"]} == {"kept"}
    assert all(s["from"][0]["id"] == s["id"] for s in body["segments"])


def test_persona_history_lists_the_segment_in_each_release(grown_live, trained_release, grown) -> None:
    segment = grown_live.get("/personas").get_json()["personas"][0]

    body = grown_live.get(f"/personas/{segment['cluster_id']}/history").get_json()

    assert [r["version"] for r in body["releases"]] == [trained_release.name, grown.name]
    assert [r["live"] for r in body["releases"]] == [False, True]
    assert body["releases"][-1]["size"] == segment["size"] and body["releases"][-1]["name"] == segment["name"]
    assert all(r["top_traits"] and 0 < r["share"] < 1 for r in body["releases"])


def test_history_of_an_unknown_segment_is_a_404_in_the_envelope(grown_live) -> None:
    response = grown_live.get("/personas/9999/history")

    assert response.status_code == 404
    assert response.get_json()["status"] == "error" and response.get_json()["error"]["code"] == "not_found"


def test_a_segment_whose_customers_are_gone_is_reported_vanished_and_the_others_keep_their_ids(
        tmp_path, trained_release, training_customers) -> None:
    from portal.segmentation.training import train_release

    placed = _placed(trained_release, training_customers)
    sizes = pd.Series(placed).value_counts()
    gone = int(sizes.index[-1])
    training_customers[placed != gone].to_csv(tmp_path / "without.csv", index=False)

    _, manifest, _ = train_release([tmp_path / "without.csv"], tmp_path / "models", live=trained_release)

    lineage = manifest["segment_ids"]
    assert [v["id"] for v in lineage["vanished"]] == [gone]
    assert {s["id"] for s in lineage["segments"] if s["status"] == "kept"} == set(sizes.index) - {gone}
    assert lineage["counts"] == {"kept": len(sizes) - 1, "new": 0, "vanished": 1}


def test_ids_of_releases_kept_on_disk_are_never_reused(tmp_path) -> None:
    from portal.segmentation.segment_ids import next_free_id

    for version, personas, lineage in (("20260101T000000Z-aaaaaa", {"0": {}, "1": {}}, None),
                                       ("20260401T000000Z-bbbbbb", {"0": {}, "7": {}}, {"next_id": 9})):
        folder = tmp_path / version
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"version": version, "segment_ids": lineage}))
        (folder / "cluster_personas.json").write_text(json.dumps(personas))

    assert next_free_id(tmp_path, None) == 9  # segment 8 was issued, then vanished, in a release not kept
    assert next_free_id(tmp_path / "empty", None) == 0
