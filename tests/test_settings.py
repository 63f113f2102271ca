"""Settings defaults that follow each other, start-up errors in one line, and how the app is started."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app import is_cli_command_other_than_run
from portal.settings import PROJECT_ROOT, SettingsError, load_settings


def test_persona_path_follows_model_dir_unless_set(tmp_path: Path) -> None:
    """With another MODEL_DIR the ./model personas were applied as overrides of the live release."""
    assert load_settings(_env_file=None, model_dir=tmp_path).personas_file == tmp_path / "cluster_personas.pkl"
    chosen = tmp_path / "edited.json"
    assert load_settings(_env_file=None, model_dir=tmp_path, persona_path=chosen).personas_file == chosen


def test_a_bad_setting_stops_start_up_with_one_line_naming_it() -> None:
    with pytest.raises(SettingsError, match="^Invalid setting RETRAIN_TIMEZONE: .*Asia/Singapore"):
        load_settings(_env_file=None, retrain_timezone="Mars/Olympus")


@pytest.mark.parametrize(("argv", "other_than_run"), [
    (["/venv/bin/flask", "--app", "app", "train"], True),
    (["/venv/lib/python3.11/site-packages/flask/__main__.py", "--app", "app", "train"], True),  # python -m flask
    (["/venv/bin/flask", "--app", "app", "run"], False),
    (["/venv/lib/python3.11/site-packages/flask/__main__.py", "--app", "app", "run"], False),
    (["/venv/bin/gunicorn", "-c", "gunicorn.conf.py"], False),
    (["app.py"], False),
])
def test_cli_commands_other_than_run_start_no_watcher_or_scheduler(argv: list[str], other_than_run: bool) -> None:
    assert is_cli_command_other_than_run(argv) is other_than_run


def test_make_train_passes_a_file_name_with_spaces_and_brackets_as_one_argument() -> None:
    dry_run = subprocess.run(["make", "-n", "train", "DATA=Customer list (2024).xlsx"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, check=True, timeout=60)
    assert '--data "Customer list (2024).xlsx"' in dry_run.stdout
