"""The flask CLI says what is wrong in one line and exits non-zero; the live model is never touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.segmentation import releases

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("name", "words"), [("wrong_columns.xlsx", "2 usable customers is too few"),
                                             ("all_bad.csv", "3 usable customers is too few"), ("empty.xlsx", "empty")])
def test_train_on_a_file_it_cannot_use_is_one_line_and_exit_1(runner, workspace, name, words):
    before = releases.live_release_dir(workspace["model"])
    result = runner.invoke(args=["train", "--data", str(DATA / name)])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and words in error_lines[0].lower() and "unchanged" in error_lines[0]
    assert releases.live_release_dir(workspace["model"]) == before


def test_schema_shows_each_column_role_and_reason_without_values(runner, tmp_path):
    rows = ["Customer ID;Contact;Joined;Tier;Spend"]
    rows += [f"C{i};person{i}@mail.example.com;0{1 + i % 9}-0{1 + i % 9}-2021;{['Bronze', 'Gold'][i % 2]};{i * 3.5}"
             for i in range(60)]
    path = tmp_path / "members.csv"
    path.write_text("\n".join(rows) + "\n")
    result = runner.invoke(args=["schema", str(path), "--role", "Spend=ordinal", "--exclude", "Tier"])

    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "identifier" in lines["Customer"] and "personal" in lines["Contact"] and "date" in lines["Joined"]
    assert "excluded on request" in lines["Tier"] and "set on request" in lines["Spend"]
    assert "person1@" not in result.output


@pytest.mark.parametrize(("args", "words"), [(["--role", "Spend"], "COLUMN=ROLE"),
                                             (["--exclude", "Nope"], "no column 'Nope'")])
def test_schema_with_a_bad_override_says_how_to_write_it(runner, tmp_path, args, words):
    path = tmp_path / "t.csv"
    path.write_text("Spend,Age\n" + "\n".join(f"{i},{20 + i}" for i in range(30)) + "\n")
    result = runner.invoke(args=["schema", str(path), *args])
    assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
