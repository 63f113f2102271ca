"""Model releases: round trip, verification (checksums, environment, completeness), atomic swap, pruning."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portal.errors import ReleaseError
from portal.segmentation import releases

PROMO = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
         "past_engagement": "Low"}


def copy_release(source: Path, production_dir: Path, version: str) -> Path:
    """A copy of a release under a new version name (the manifest is not checksummed, its files are)."""
    target = production_dir / version
    shutil.copytree(source, target)
    manifest = json.loads((target / releases.MANIFEST).read_text())
    (target / releases.MANIFEST).write_text(json.dumps({**manifest, "version": version}, indent=2))
    return target


def _edit_manifest(release: Path, change) -> None:
    path = release / releases.MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.fixture
def release(tmp_path: Path, trained_release: Path) -> Path:
    """A private copy of the session's release that a test may damage."""
    return copy_release(trained_release, tmp_path, trained_release.name)


@pytest.mark.slow
def test_round_trip_places_rows_like_the_fitted_model(tmp_path: Path, training_file: Path) -> None:
    from portal.segmentation.model import SegmentationModel
    from portal.segmentation.training import collect_training_data, write_release
    from portal.serving.live_model import load_release
    from schemas import DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER

    data = collect_training_data([training_file])
    data.customers = data.customers.iloc[:600].reset_index(drop=True)
    model = SegmentationModel().fit(data.customers)
    staging = releases.new_staging_dir(tmp_path)
    manifest = write_release(model, data, staging, "v-round-trip")
    final = releases.publish_release(staging, tmp_path, manifest["version"])

    assert releases.verify_release(final)["version"] == "v-round-trip"
    loaded = load_release(final, warm_up=False)
    unseen = pd.DataFrame({LOCATION: ["Nowhere Town", "Bedok"], GENDER: ["Female", "Unknown"],
                           LOYALTY_TIER: ["Gold", "Platinum"],
                           DATE_JOINED: pd.to_datetime(["1999-03-04", "2024-12-31"])})
    rows = pd.concat([data.customers, unseen], ignore_index=True)
    fitted, reloaded = model.place(rows), loaded.model.place(rows)
    np.testing.assert_array_equal(fitted.cluster_id, reloaded.cluster_id)
    np.testing.assert_allclose(fitted.confidence, reloaded.confidence)
    assert set(manifest["files"]) >= set(releases.REQUIRED_FILES)


def test_tampered_artifact_is_refused_naming_the_file_and_the_fix(release: Path) -> None:
    with (release / "umap.pkl").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ReleaseError, match=r"umap\.pkl does not match its checksum.*make train"):
        releases.verify_release(release)


@pytest.mark.parametrize("library", ["numba", "umap-learn", "python"])
def test_environment_mismatch_is_refused_naming_the_library(release: Path, library: str) -> None:
    _edit_manifest(release, lambda m: m["environment"].update({library: "0.0.1"}))
    with pytest.raises(ReleaseError, match=rf"{library} 0\.0\.1 \(release\) vs .* \(running\).*make train"):
        releases.verify_release(release)


def test_missing_artifact_is_refused(release: Path) -> None:
    (release / "hdbscan.pkl").unlink()
    with pytest.raises(ReleaseError, match=r"missing hdbscan\.pkl.*make train"):
        releases.verify_release(release)


def test_manifest_that_stops_listing_an_artifact_is_refused(release: Path) -> None:
    """Dropping a file's checksum from the manifest must not let a changed file through."""
    _edit_manifest(release, lambda m: m["files"].pop("umap.pkl"))
    (release / "umap.pkl").write_bytes(b"not a model")
    with pytest.raises(ReleaseError, match=r"does not list umap\.pkl"):
        releases.verify_release(release)


@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_missing_or_unreadable_manifest_is_refused(release: Path, damage: str) -> None:
    manifest = release / releases.MANIFEST
    manifest.unlink() if damage == "delete" else manifest.write_text("{not json")
    with pytest.raises(ReleaseError, match="make train"):
        releases.verify_release(release)


def test_corrupt_live_release_gives_503_on_health_and_model_routes(workspace, make_app) -> None:
    live = releases.live_release_dir(workspace["model"])
    (live / "hdbscan.pkl").write_bytes(b"corrupt")
    client = make_app().test_client()

    health = client.get("/health")
    assert health.status_code == 503
    message = health.get_json()["error"]["message"]
    assert "hdbscan.pkl" in message and "make train" in message

    for response in (client.get("/personas"),
                     client.post("/generate-promo", json={**PROMO, "location": "Bedok", "gender": "F"})):
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "error" and body["error"]["code"] == "model_unavailable"
        assert "hdbscan.pkl" in body["error"]["message"]


def test_a_damaged_live_release_falls_back_to_the_newest_release_that_verifies(workspace, make_app) -> None:
    """A company's trained model stays in service when a newer live release is damaged."""
    earlier = releases.live_release_dir(workspace["model"])
    broken = copy_release(earlier, workspace["production_models"], "29990101T000000Z-broken")
    releases.set_live(workspace["model"], broken)
    (broken / "umap.pkl").write_bytes(b"corrupt")
    client = make_app().test_client()

    health = client.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["model_version"] == earlier.name
    assert broken.name in body["warning"] and "umap.pkl" in body["warning"]
    assert client.post("/generate-promo", json={**PROMO, "location": "Bedok"}).status_code == 200


def _bootstrap_settings(workspace: dict[str, Path], sample: Path):
    from portal.settings import load_settings

    return load_settings(_env_file=None, model_dir=workspace["model"], sample_data_path=sample,
                         production_models_dir=workspace["production_models"])


def test_make_run_points_at_the_newest_verified_release_instead_of_training_the_sample(workspace) -> None:
    from portal.bootstrap import SERVE, decide

    earlier = releases.live_release_dir(workspace["model"])
    broken = copy_release(earlier, workspace["production_models"], "29990101T000000Z-broken")
    releases.set_live(workspace["model"], broken)
    (broken / "hdbscan.pkl").write_bytes(b"corrupt")

    assert decide(_bootstrap_settings(workspace, Path("sample.xlsx"))) == SERVE
    assert releases.live_release_dir(workspace["model"]) == earlier.resolve()


@pytest.mark.parametrize(("sources", "expected"), [(["customers.xlsx"], "refuse"), (["sample.xlsx"], "train")])
def test_make_run_trains_the_sample_only_when_every_release_came_from_it(workspace, sources, expected) -> None:
    from portal.bootstrap import REFUSE, TRAIN_SAMPLE, decide

    live = releases.live_release_dir(workspace["model"])
    _edit_manifest(live, lambda manifest: manifest.update(sources=sources))
    (live / "umap.pkl").write_bytes(b"corrupt")

    outcome = decide(_bootstrap_settings(workspace, Path("sample.xlsx")))
    assert outcome == {"refuse": REFUSE, "train": TRAIN_SAMPLE}[expected]
    assert releases.live_release_dir(workspace["model"]) == live.resolve()  # nothing was switched


def test_make_run_trains_the_sample_on_a_fresh_machine(tmp_path: Path) -> None:
    from portal.bootstrap import TRAIN_SAMPLE, decide

    folders = {name: tmp_path / name for name in ("model", "production_models")}
    assert decide(_bootstrap_settings(folders, tmp_path / "sample.xlsx")) == TRAIN_SAMPLE


def test_set_live_is_atomic_and_leaves_the_old_release_untouched(tmp_path: Path, trained_release: Path) -> None:
    production, model_dir = tmp_path / "production_models", tmp_path / "model"
    old = copy_release(trained_release, production, "20250101T000000Z-aaaaaa")
    new = copy_release(trained_release, production, "20250201T000000Z-bbbbbb")
    releases.set_live(model_dir, old)
    seen, problems, stop = set(), [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            live = releases.live_release_dir(model_dir)
            if live is None:
                problems.append("pointer resolved to nothing")
                continue
            seen.add(releases.read_manifest(live)["version"])
            if not (model_dir / "umap.pkl").is_file():
                problems.append("stable link dangling")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            releases.set_live(model_dir, new if i % 2 == 0 else old)
    finally:
        stop.set()
        thread.join(10)
    assert problems == []
    assert seen == {old.name, new.name}
    assert releases.live_release_dir(model_dir) == old.resolve()
    releases.verify_release(new)
    releases.verify_release(old)
    assert not list(model_dir.glob(".current-*"))


def test_set_live_that_fails_midway_keeps_the_old_pointer(tmp_path: Path, trained_release: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    production, model_dir = tmp_path / "production_models", tmp_path / "model"
    old = copy_release(trained_release, production, "20250101T000000Z-aaaaaa")
    new = copy_release(trained_release, production, "20250201T000000Z-bbbbbb")
    releases.set_live(model_dir, old)

    def crash(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(releases.os, "replace", crash)
    with pytest.raises(OSError):
        releases.set_live(model_dir, new)
    monkeypatch.undo()
    assert releases.live_release_dir(model_dir) == old.resolve()
    assert not list(model_dir.glob(".current-*"))
    assert releases.read_manifest(model_dir)["version"] == old.name  # model/manifest.json, the seed path


def test_prune_keeps_the_newest_and_the_live_release(tmp_path: Path, trained_release: Path) -> None:
    production, model_dir = tmp_path / "production_models", tmp_path / "model"
    versions = [f"2025010{i}T000000Z-aaaaaa" for i in range(1, 6)]
    for version in versions:
        copy_release(trained_release, production, version)
    releases.set_live(model_dir, production / versions[0])

    removed = releases.prune_releases(production, model_dir, keep=2)

    assert sorted(removed) == versions[1:3]
    left = [r.version for r in releases.list_releases(production, model_dir)]
    assert left == [versions[4], versions[3], versions[0]]
    releases.verify_release(releases.live_release_dir(model_dir))


def test_clean_stale_staging_removes_only_temporary_folders(tmp_path: Path, trained_release: Path) -> None:
    production = tmp_path / "production_models"
    kept = copy_release(trained_release, production, "20250101T000000Z-aaaaaa")
    for _ in range(2):
        staging = releases.new_staging_dir(production)
        (staging / "umap.pkl").write_bytes(b"half written")
    (production / ".retrain").mkdir()

    assert releases.clean_stale_staging(production) == 2
    assert sorted(p.name for p in production.iterdir()) == [".retrain", kept.name]
    assert releases.clean_stale_staging(production) == 0
    assert [r.version for r in releases.list_releases(production, tmp_path / "model")] == [kept.name]


def test_publish_release_renames_the_staging_folder(tmp_path: Path, trained_release: Path) -> None:
    staging = releases.new_staging_dir(tmp_path)
    for item in trained_release.iterdir():
        shutil.copy2(item, staging / item.name)
    inode = os.stat(staging).st_ino
    final = releases.publish_release(staging, tmp_path, "20250101T000000Z-cccccc")
    assert not staging.exists() and os.stat(final).st_ino == inode
    releases.verify_release(final)
