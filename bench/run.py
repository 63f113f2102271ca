"""`make bench`: run the benchmark sections and print one table each (optionally also as markdown).

    python -m bench.run                     # every section at default sizes (~20 min on 2 cores)
    python -m bench.run --quick             # small sizes, end to end in a few minutes
    python -m bench.run --only fit,quality  # some sections
    python -m bench.run --full --out bench.md
"""

from __future__ import annotations

import argparse
import importlib
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.common import Context, Table

SECTIONS = ("quality", "placement", "fit", "generation", "api", "hosts", "retrain", "schemas", "segment_ids",
            "model_fit", "tables")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes: a smoke run in a few minutes")
    size.add_argument("--full", action="store_true", help="add the slow sizes (seed at 50k, 200k retrain)")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (data, models, logs)")
    args = parser.parse_args(argv)
    args.sections = SECTIONS
    if args.only:
        args.sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = [s for s in args.sections if s not in SECTIONS]
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "default"
    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    ctx = Context(mode=mode, workdir=workdir)
    header = (f"portal bench, {mode} mode, {datetime.now().isoformat(timespec='seconds')}, "
              f"Python {platform.python_version()}, {shutil.os.cpu_count()} CPUs")
    print(header, flush=True)
    tables: list[Table] = []
    failed = []
    started = time.perf_counter()
    try:
        for name in args.sections:
            section_started = time.perf_counter()
            print(f"\n[{name}] running ...", flush=True)
            try:
                produced = importlib.import_module(f"bench.{name}").run(ctx)
            except Exception as exc:  # one broken section must not hide the others' figures
                failed.append(name)
                print(f"[{name}] FAILED: {type(exc).__name__}: {exc}", flush=True)
                continue
            for table in produced:
                print("\n" + table.text(), flush=True)
            tables += produced
            print(f"[{name}] {time.perf_counter() - section_started:.0f} s", flush=True)
    finally:
        if args.keep:
            print(f"\nscratch folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started
    print(f"\ndone in {total:.0f} s" + (f"; failed sections: {', '.join(failed)}" if failed else ""))
    if args.out:
        body = "\n\n".join(t.markdown() for t in tables)
        args.out.write_text(f"{header}\n\n{body}\n\nTotal {total:.0f} s.\n")
        print(f"markdown written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
