"""Shared fixtures: a tiny model fitted once per session, and apps whose folders are temporary."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal.settings import PROJECT_ROOT

os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

pytest_plugins = ("tests.llm_server", "tests.redis_server")

DATA = Path(__file__).parent / "data"
TRAINING_ROWS = 1500


@pytest.fixture(scope="session")
def training_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,500-row synthetic customer file (and its answer file) for the session's model."""
    from portal.segmentation.sample_data import write_sample

    return write_sample(tmp_path_factory.mktemp("training") / "customers.xlsx", rows=TRAINING_ROWS, seed=11)


@pytest.fixture(scope="session")
def trained_release(tmp_path_factory: pytest.TempPathFactory, training_file: Path) -> Path:
    """One release fitted by the project's own pipeline; tests copy it rather than refit."""
    from portal.segmentation import releases
    from portal.segmentation.training import train_release

    production = tmp_path_factory.mktemp("session_models")
    staging, manifest, _ = train_release([training_file], production)
    return releases.publish_release(staging, production, manifest["version"])


@pytest.fixture
def workspace(tmp_path: Path, trained_release: Path) -> dict[str, Path]:
    """Fresh data folders with a copy of the session's release as the live model."""
    from portal.segmentation import releases

    folders = {name: tmp_path / name for name in ("model", "production_models", "uploads", "base_data")}
    for folder in folders.values():
        folder.mkdir()
    release = folders["production_models"] / trained_release.name
    shutil.copytree(trained_release, release)
    releases.set_live(folders["model"], release)
    return folders


def make_settings_overrides(workspace: dict[str, Path], **extra: Any) -> dict[str, Any]:
    """Settings for an app that touches only the test's folders and never a real LLM."""
    return {
        "_env_file": None, "flask_env": "testing", "openai_api_key": None, "redis_url": None,
        "model_dir": workspace["model"],
        "production_models_dir": workspace["production_models"], "upload_dir": workspace["uploads"],
        "base_data_dir": workspace["base_data"], "retrain_enabled": False, "log_level": "WARNING",
        "start_background": False, **extra,
    }


@pytest.fixture(scope="session")
def loaded_release(trained_release: Path):
    """The session's release loaded and warmed up once; apps whose live copy verifies serve it."""
    from portal.serving.live_model import load_release

    return load_release(trained_release)


@pytest.fixture
def make_app(workspace: dict[str, Path], loaded_release):
    """Build an app on the test's workspace with optional setting overrides; its model is loaded (the
    session's loaded release when the workspace's live copy verifies as that release, else from disk)."""
    from app import create_app

    built = []

    def build(**extra: Any):
        app = create_app(make_settings_overrides(workspace, **extra))
        models = app.extensions["portal"].models
        if not models.serve_loaded(loaded_release):
            models.reload_if_changed()
        built.append(app)
        return app

    yield build
    for app in built:
        app.extensions["portal"].content.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def no_model_client(tmp_path: Path) -> Iterator[Any]:
    """A client of an app whose MODEL_DIR holds no release at all."""
    from app import create_app

    folders = {name: tmp_path / name for name in ("model", "production_models", "uploads", "base_data")}
    for folder in folders.values():
        folder.mkdir()
    app = create_app(make_settings_overrides(folders))
    yield app.test_client()
    app.extensions["portal"].content.close()


@pytest.fixture(scope="session")
def unbalanced_table_model(tmp_path_factory: pytest.TempPathFactory):
    """The three-unbalanced loyalty structure (groups of 60/30/10%, 15% of each living in areas no group favours)
    read as a table of its own columns and fitted once: (model, table, planted group per row). The clusterer cut
    its largest group into cells of tier and gender and made the 'elsewhere' customers a segment."""
    import pandas as pd

    from portal.segmentation.sample_data import write_sample
    from portal.segmentation.table_model import TableParams, TableSegmentationModel
    from portal.segmentation.table_training import read_training_table

    path = write_sample(tmp_path_factory.mktemp("unbalanced") / "unbalanced.csv", 5000, 42, "three-unbalanced")
    truth = pd.read_csv(path.with_name(path.stem + ".answers.csv"))["true_group"].to_numpy()
    data = read_training_table(path, progress=lambda m: None)
    model = TableSegmentationModel(data.schema, TableParams()).fit(data.frame, progress=lambda m: None)
    return model, data.frame, truth
