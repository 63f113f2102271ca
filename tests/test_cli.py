"""The flask CLI says what is wrong in one line and exits non-zero; the live model is never touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.segmentation import releases

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("name", "words"), [("wrong_columns.xlsx", "missing"), ("all_bad.csv", "none of the"),
                                             ("empty.xlsx", "empty")])
def test_train_on_a_file_it_cannot_use_is_one_line_and_exit_1(runner, workspace, name, words):
    before = releases.live_release_dir(workspace["model"])
    result = runner.invoke(args=["train", "--data", str(DATA / name)])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and words in error_lines[0].lower() and "unchanged" in error_lines[0]
    assert releases.live_release_dir(workspace["model"]) == before
