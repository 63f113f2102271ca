"""The per-process ModelHolder: first load, hot reload on a pointer change, requests in flight."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from portal.errors import ModelUnavailable
from portal.segmentation import releases
from portal.serving.live_model import ModelHolder
from schemas import DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER
from tests.test_releases import copy_release

ROWS = pd.DataFrame({LOCATION: ["Bedok", "Jurong West"], GENDER: ["Female", "Male"],
                     LOYALTY_TIER: ["Gold", "Silver"], DATE_JOINED: pd.to_datetime(["2021-05-01", "2019-11-20"])})


def _wait_for(condition, timeout_s: float) -> float:
    """Seconds until ``condition()`` holds; fails the test after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"condition not met within {timeout_s} s")


def test_hot_reload_swaps_while_a_request_finishes_on_the_old_release(workspace: dict[str, Path]) -> None:
    holder = ModelHolder(workspace["model"], poll_interval_s=0.2)
    holder.start()
    try:
        in_flight = holder.current(wait_s=60)
        first_version = in_flight.version
        second = copy_release(in_flight.path, workspace["production_models"], "29990101T000000Z-second")

        releases.set_live(workspace["model"], second)
        swapped_after_s = _wait_for(lambda: holder.release.version == second.name, timeout_s=20)

        assert holder.current().version == second.name
        assert in_flight.version == first_version
        before = in_flight.model.place(ROWS)  # the old release keeps working for whoever holds it
        after = holder.current().model.place(ROWS)
        assert list(before.cluster_id) == list(after.cluster_id)
        assert holder.error is None
        assert swapped_after_s < 10
    finally:
        holder.stop()


def test_first_release_serves_before_its_warm_up_finishes(workspace: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.segmentation.model import SegmentationModel

    seen_during_warm_up = []
    holder = ModelHolder(workspace["model"])

    def slow_warm_up(model: SegmentationModel) -> float:
        seen_during_warm_up.append(holder.release is not None and holder.release.model is model)
        return 0.0

    monkeypatch.setattr(SegmentationModel, "warm_up", slow_warm_up)
    assert holder.reload_if_changed()
    assert seen_during_warm_up == [True]

    second = copy_release(holder.release.path, workspace["production_models"], "29990101T000000Z-second")
    releases.set_live(workspace["model"], second)
    assert holder.reload_if_changed()
    assert seen_during_warm_up == [True, False]  # a later release warms up before it serves
    assert holder.release.version == second.name


def test_a_broken_new_release_keeps_the_old_one_serving(workspace: dict[str, Path]) -> None:
    holder = ModelHolder(workspace["model"])
    assert holder.reload_if_changed()
    old_version = holder.release.version
    broken = copy_release(holder.release.path, workspace["production_models"], "29990101T000000Z-broken")
    (broken / "encoder.pkl").write_bytes(b"garbage")

    releases.set_live(workspace["model"], broken)

    assert not holder.reload_if_changed()
    assert holder.current().version == old_version
    assert "encoder.pkl" in holder.error


def test_until_the_first_load_finishes_the_reason_is_that_the_model_is_loading(workspace: dict[str, Path]) -> None:
    """/health during a worker's first seconds says the model is loading, not that none was ever trained."""
    holder = ModelHolder(workspace["model"])
    live = releases.live_release_dir(workspace["model"])
    assert holder.release is None and f"The model {live.name} is loading" in holder.error
    assert "make train" not in holder.error
    assert holder.reload_if_changed() and holder.error is None


def test_no_release_means_503_with_the_command_to_build_one(tmp_path: Path) -> None:
    holder = ModelHolder(tmp_path / "model")
    assert not holder.reload_if_changed()
    with pytest.raises(ModelUnavailable, match="make train"):
        holder.current()


def test_a_first_release_that_cannot_place_is_withdrawn_with_the_reason(workspace: dict[str, Path],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.segmentation.model import SegmentationModel

    def broken_warm_up(model: SegmentationModel) -> float:
        raise AttributeError("'ColumnTransformer' object has no attribute 'transformers_'")

    monkeypatch.setattr(SegmentationModel, "warm_up", broken_warm_up)
    holder = ModelHolder(workspace["model"])
    assert not holder.reload_if_changed()
    with pytest.raises(ModelUnavailable, match="warm-up.*transformers_.*make train"):
        holder.current()


def test_persona_path_outside_the_release_renames_personas(workspace, tmp_path):
    """Marketing can rename a segment without retraining; aggregates still come from the release."""
    import json as _json

    release_dir = releases.live_release_dir(workspace["model"])
    personas = _json.loads((release_dir / "cluster_personas.json").read_text())
    first = next(iter(personas))
    edited = tmp_path / "personas.json"
    edited.write_text(_json.dumps({first: {"name": "Weekend Treat Seekers", "size": -1}}))
    holder = ModelHolder(workspace["model"], persona_path=edited)
    holder.reload_if_changed()
    persona = holder.current().persona(int(first))
    assert persona["name"] == "Weekend Treat Seekers"
    assert persona["size"] == personas[first]["size"]


def test_persona_path_with_unknown_segments_is_ignored(workspace, tmp_path):
    edited = tmp_path / "personas.json"
    edited.write_text('{"999": {"name": "Ghost segment"}}')
    holder = ModelHolder(workspace["model"], persona_path=edited)
    holder.reload_if_changed()
    assert all(p["name"] != "Ghost segment" for p in holder.current().personas.values())
