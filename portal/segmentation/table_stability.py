"""The stability measure of a table fit: the ARI between its labels and those of a second fit with the next
random seed (the sample of fitted rows and UMAP's layout both change), recorded in the manifest.

Both fits spend most of their time in UMAP's layout, which runs on one core when its seed is fixed. So on a
machine with a core to spare the second fit runs in a process of its own while the first one runs here,
instead of after it. The labels are the same either way: a fit depends only on the table and its settings.
When that process cannot start, fails or dies, the second fit runs here after the first, as it always did.

The process is ``python -m portal.segmentation.table_stability TASK`` rather than a multiprocessing child:
spawn would run the caller's main script again in it, and fork is unsafe in a process with other threads.
The task file holds the schema, the settings and the feature columns only (no id or personal column), in a
private temporary folder removed afterwards.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from portal.ingestion.roles import TableSchema
from portal.segmentation.table_features import TableFeatures
from portal.segmentation.table_model import TableParams, TableSegmentationModel

log = logging.getLogger(__name__)
#: Seconds a stopped second-fit process is given to exit before it is killed.
_STOP_SECONDS = 5.0
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
TASK, LABELS, ERRORS = "task.pkl", "labels.npy", "errors.txt"


def refit_labels(schema: TableSchema, params: TableParams, frame: pd.DataFrame,
                 features: TableFeatures | None = None) -> np.ndarray:
    """Labels of a fit with ``params`` that skips the agreement check (it only serves to compare labels);
    ``features``: the first fit's feature stage, reused when every row is fitted."""
    model = TableSegmentationModel(schema, params).fit(frame, lambda m: None, measure_agreement=False,
                                                       features=features)
    return np.asarray(model.labels_)


def main(argv: list[str]) -> int:
    """The second fit in its own process: reads the task file, writes the labels beside it."""
    task = Path(argv[1])
    with task.open("rb") as handle:
        schema, params, frame = pickle.load(handle)  # noqa: S301 - written by the parent, in its private folder
    labels = refit_labels(schema, params, frame)
    temp = task.with_name(f".{LABELS}")
    with temp.open("wb") as handle:
        np.save(handle, labels)
    os.replace(temp, task.with_name(LABELS))
    return 0


class StabilityRefit:
    """The second fit of a table, started when the table is known and read once the first fit is done."""

    def __init__(self, schema: TableSchema, frame: pd.DataFrame, params: TableParams,
                 side_by_side: bool | None = None) -> None:
        self.schema = schema
        self.frame = frame
        self.params = replace(params, random_state=params.random_state + 1)
        #: where the second fit ran: "in its own process" or "after the first fit"
        self.ran = "after the first fit"
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        if side_by_side if side_by_side is not None else (os.cpu_count() or 1) > 1:
            self._start()

    def _start(self) -> None:
        folder = tempfile.TemporaryDirectory(prefix="portal-stability-")
        task = Path(folder.name) / TASK
        features = self.frame[[c.name for c in self.schema.features]]
        path = os.pathsep.join(p for p in (str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        try:
            with task.open("wb") as handle:
                pickle.dump((self.schema, self.params, features), handle, protocol=pickle.HIGHEST_PROTOCOL)
            with (Path(folder.name) / ERRORS).open("wb") as errors:
                self._process = subprocess.Popen([sys.executable, "-m", __name__, str(task)],
                                                 env={**os.environ, "PYTHONPATH": path}, stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL, stderr=errors)
        except (OSError, pickle.PicklingError) as exc:
            log.warning("the second fit cannot run in its own process (%s: %s); it runs after the first",
                        type(exc).__name__, exc)
            folder.cleanup()
            return
        self._folder = folder

    def labels(self, model: TableSegmentationModel) -> np.ndarray:
        """The second fit's labels: waited for, or fitted here (reusing ``model``'s feature stage)."""
        labels = self._child_labels()
        if labels is None:
            return refit_labels(self.schema, self.params, self.frame, model.features_)
        self.ran = "in its own process"
        return labels

    def ari(self, model: TableSegmentationModel) -> float:
        """ARI between ``model``'s labels and the second fit's."""
        return round(float(adjusted_rand_score(model.labels_, self.labels(model))), 4)

    def _child_labels(self) -> np.ndarray | None:
        if self._process is None or self._folder is None:
            return None
        folder = Path(self._folder.name)
        try:
            code = self._process.wait()
            if code == 0 and (folder / LABELS).is_file():
                return np.load(folder / LABELS)
            lines = (folder / ERRORS).read_text(errors="replace").strip().splitlines()
            log.warning("the second fit failed in its own process (exit code %s: %s); it runs here instead", code,
                        lines[-1] if lines else "no message")
            return None
        finally:
            self.close()

    def close(self) -> None:
        """Stop the second fit's process if it still runs (the first fit failed) and remove its folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        folder, self._folder = self._folder, None
        if folder is not None:
            folder.cleanup()


__all__ = ["StabilityRefit", "refit_labels"]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
