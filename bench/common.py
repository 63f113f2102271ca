"""Shared plumbing: the run context, fresh child processes with their peak memory, data files, tables."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
RESULT_MARK = "BENCH_RESULT "
#: Seed of the generator for "new" customers, different from every training seed.
NEW_ROWS_SEED = 2024
#: Variables that would change what a child does (a real LLM, a shared cache) are removed.
_DROPPED_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REDIS_URL", "ADMIN_TOKEN", "MODEL_DIR", "PERSONA_PATH",
                "PRODUCTION_MODELS_DIR", "UPLOAD_DIR", "BASE_DATA_DIR", "SAMPLE_DATA_PATH", "PORT",
                "WEB_CONCURRENCY")


def child_env(**extra: str) -> dict[str, str]:
    """Environment of every child: the Makefile's numba settings, project on the path, quiet logs."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    env.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("LOG_LEVEL", "WARNING")
    env["RETRAIN_ENABLED"] = "false"
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class ChildResult:
    """What a fresh process reported, how long it lived and its peak resident memory."""

    value: Any
    wall_s: float
    peak_mb: float
    spawned_at: float


def run_child(target: str, args: dict[str, Any] | None = None, *, timeout_s: float = 1800,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> ChildResult:
    """Run ``bench.child target`` in a fresh interpreter; peak memory is the child's own ru_maxrss (wait4)."""
    with tempfile.TemporaryFile(mode="w+") as errors:
        spawned_at = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen([str(PYTHON), "-m", "bench.child", target, json.dumps(args or {})],
                                stdout=subprocess.PIPE, stderr=errors, text=True, env=env or child_env(),
                                cwd=str(cwd or ROOT))
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            output = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            proc.stdout.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        lines = [line for line in output.splitlines() if line.startswith(RESULT_MARK)]
        if proc.returncode != 0 or not lines:
            errors.seek(0)
            tail = errors.read()[-3000:]
            raise RuntimeError(f"child {target} failed (exit {proc.returncode}):\n{tail}")
    return ChildResult(json.loads(lines[-1][len(RESULT_MARK):]), wall, usage.ru_maxrss / 1024, spawned_at)


def report(value: Any) -> None:
    """Called in a child: hand the result to the parent."""
    print(RESULT_MARK + json.dumps(value, default=float), flush=True)


def self_peak_mb(children: bool = False) -> float:
    """Peak resident memory of this process so far, or with ``children`` of the largest child it has waited
    for (the stability refit's); ru_maxrss, which Linux reports in KiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024


# -- data ---------------------------------------------------------------------------------------

ALIASED_HEADERS = {"Customer ID": "cust_id", "Gender": "sex", "Loyalty Tier": "membership_level",
                   "Date Joined": "join_date", "Location": "branch", "Full Name": "name",
                   "Email Address": "email", "Phone Number": "mobile", "Notes": "remarks"}


@dataclass
class Context:
    """One bench run: its sizes, its scratch folder, and the fitted models sections share."""

    mode: str  # quick | default | full
    workdir: Path
    fits: dict[tuple, dict] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    @property
    def full(self) -> bool:
        return self.mode == "full"

    def customer_file(self, rows: int, seed: int, *, fmt: str = "csv", aliased: bool = False,
                      structure: str = "bundled") -> Path:
        """A generated customer file (and its answers file beside it), written once per run."""
        tag = f"{'_aliased' if aliased else ''}{'' if structure == 'bundled' else '_' + structure}"
        path = self.workdir / "data" / f"customers_{rows}_{seed}{tag}.{fmt}"
        if not path.exists():
            run_child("bench.common:child_write_customers",
                      {"path": str(path), "rows": rows, "seed": seed, "aliased": aliased, "structure": structure})
        return path

    def fitted(self, kind: str, rows: int, seed: int, *, aliased: bool = False, structure: str = "bundled") -> dict:
        """Fit ``kind`` ('ours' or 'seed') on a generated file in a fresh process, once per run."""
        key = (kind, rows, seed, aliased) if structure == "bundled" else (kind, rows, seed, aliased, structure)
        if key not in self.fits:
            data = self.customer_file(rows, seed, aliased=aliased, structure=structure)
            tag = f"{'_aliased' if aliased else ''}{'' if structure == 'bundled' else '_' + structure}"
            out = self.workdir / "models" / f"{kind}_{rows}_{seed}{tag}"
            result = run_child(f"bench.fit:child_fit_{kind}", {"data": str(data), "out": str(out)},
                               timeout_s=7200)
            self.fits[key] = {**result.value, "process_peak_mb": result.peak_mb, "process_wall_s": result.wall_s,
                              "dir": str(out), "data": str(data), "rows": rows, "seed": seed}
        return self.fits[key]


def child_write_customers(path: str, rows: int, seed: int, aliased: bool, structure: str = "bundled") -> dict:
    """Write generated customers (csv or xlsx by suffix) plus ``<stem>.answers.csv``."""
    from portal.segmentation.sample_data import generate_customers

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    customers, answers = generate_customers(rows, seed=seed, structure=structure)
    if aliased:
        customers = customers.rename(columns=ALIASED_HEADERS)
    if target.suffix == ".csv":
        customers.to_csv(target, index=False)
    else:
        customers.to_excel(target, index=False, sheet_name="Customers")
    answers.to_csv(target.with_name(target.stem + ".answers.csv"), index=False)
    return {"path": path}


def read_canonical(path: str | Path):
    """Canonical customer rows of a file, through the same ingestion code as uploads and training."""
    from portal.ingestion.reader import read_customer_file

    return read_customer_file(Path(path), filename=Path(path).name).frame


def truth_for(path: str | Path, customers) -> Any:
    """Planted group of each canonical row (matched on Customer ID)."""
    import pandas as pd

    from schemas import CUSTOMER_ID

    path = Path(path)
    answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"))
    return customers[CUSTOMER_ID].map(dict(zip(answers["Customer ID"], answers["true_group"]))).to_numpy()


# -- figures and tables --------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def fmt(value: Any, digits: int = 2) -> str:
    """Numbers for tables: None as '—', floats rounded, ints with thousands separators."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "—"
        return f"{value:,.{digits}f}"
    return str(value)


def secs(value: float | None) -> str:
    """Seconds, or milliseconds below one second."""
    if value is None:
        return "—"
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])

    def text(self) -> str:
        widths = [max(len(str(h)), *(len(str(r[i])) for r in self.rows)) if self.rows else len(str(h))
                  for i, h in enumerate(self.headers)]
        line = "  ".join("-" * w for w in widths)
        out = [self.title, "=" * len(self.title),
               "  ".join(str(h).ljust(w) for h, w in zip(self.headers, widths)), line]
        for row in self.rows:
            out.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))))
        out += [f"  * {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
               "|" + "|".join("---" for _ in self.headers) + "|"]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)
