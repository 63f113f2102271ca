"""The stability refit: the second fit with the next seed, in a process of its own beside the first fit or
after it in this process, gives the same labels; a failing or abandoned process costs nothing but time."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portal.errors import TrainingError
from portal.ingestion.roles import infer_schema
from portal.segmentation.table_model import TableParams, TableSegmentationModel
from portal.segmentation.table_sample_data import generate_retail
from portal.segmentation.table_stability import TASK, StabilityRefit, refit_labels


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, TableSegmentationModel]:
    frame, _ = generate_retail(500, seed=11)
    model = TableSegmentationModel(infer_schema(frame)).fit(frame, measure_agreement=False)
    return frame, model


def test_the_second_fit_gives_the_same_labels_in_its_own_process_and_here(fitted):
    frame, model = fitted
    apart = StabilityRefit(model.schema, frame, TableParams(), side_by_side=True)
    here = StabilityRefit(model.schema, frame, TableParams(), side_by_side=False)
    expected = refit_labels(model.schema, TableParams(random_state=43), frame)  # the next seed
    assert np.array_equal(apart.labels(model), expected) and apart.ran == "in its own process"
    assert np.array_equal(here.labels(model), expected) and here.ran == "after the first fit"


def test_the_task_file_holds_the_feature_columns_only_and_is_removed(fitted):
    frame, model = fitted
    refit = StabilityRefit(model.schema, frame, TableParams(), side_by_side=True)
    assert refit._folder is not None
    folder = Path(refit._folder.name)
    with (folder / TASK).open("rb") as handle:
        _, _, sent = pickle.load(handle)
    assert list(sent.columns) == [c.name for c in model.schema.features]
    assert {"Customer ID", "Name", "Email"} & set(frame.columns) and not {"Customer ID", "Name", "Email"} & set(sent)
    refit.close()  # the first fit failed: the process is stopped and its folder removed
    assert not folder.exists() and refit._process is None


def test_a_failing_second_fit_is_logged_and_fitted_here(fitted, caplog):
    frame, model = fitted
    refit = StabilityRefit(model.schema, frame.head(40), TableParams(), side_by_side=True)
    with caplog.at_level(logging.WARNING), pytest.raises(TrainingError, match="40 usable customers"):
        refit.ari(model)  # the process fails on too few rows; fitted here, it fails the same way
    assert "failed in its own process" in caplog.text and "40 usable customers" in caplog.text
