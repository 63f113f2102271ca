"""Flask CLI commands: train, retrain, model list, model rollback, sample-data."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask

from portal.errors import PortalError, TrainingError
from portal.segmentation import releases


def _services(app: Flask):
    return app.extensions["portal"]


def register_cli(app: Flask) -> None:
    """Attach the commands to ``flask --app app ...``."""

    @app.cli.command("train")
    @click.option("--data", "paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="Customer files (.xlsx, .xls, .csv); repeat for several. Default: the bundled sample.")
    @click.option("--no-publish", is_flag=True, help="Write the release but do not make it live.")
    @click.option("--role", "roles", multiple=True, metavar="COLUMN=ROLE",
                  help="Override one column's role (any table without the loyalty columns).")
    @click.option("--exclude", multiple=True, metavar="COLUMN", help="Leave a column out.")
    @click.option("--no-stability", is_flag=True, help="Skip the second fit that measures stability across seeds.")
    def train(paths: tuple[Path, ...], no_publish: bool, roles: tuple[str, ...], exclude: tuple[str, ...],
              no_stability: bool) -> None:
        """Fit a new model release and make it live: the loyalty model for files with the loyalty columns,
        a model of the table's own columns for any other table (under the run lock, so it never races a
        retrain)."""
        from portal.errors import ServiceUnavailable
        from portal.segmentation.table_training import train_any_release
        from retraining.snapshots import write_training_snapshot
        from retraining.status import retrain_state

        settings = _services(app).settings
        files = list(paths) or [settings.sample_data_path]
        lock = retrain_state(settings).run_lock()
        try:
            if not lock.acquire():
                raise click.ClickException("A retraining or training run is in progress; wait for it "
                                           "(flask --app app model list shows the releases).")
        except ServiceUnavailable as exc:
            raise click.ClickException(exc.message) from None
        lock.keep()
        try:
            try:
                overrides = dict(_column_override(r) for r in roles)
                staging, manifest, rows = train_any_release(files, settings.production_models_dir, overrides, exclude,
                                                         progress=lambda m: click.echo(f"  • {m}"),
                                                         measure_stability=not no_stability,
                                                         live=releases.live_release_dir(settings.model_dir))
            except TrainingError as exc:  # the file cannot be used: one line, exit 1, nothing changed
                raise click.ClickException(f"{exc} (the live model is unchanged)") from None
            if not lock.still_held():
                raise click.ClickException("The run lock was lost while training (Redis unreachable for longer "
                                           "than RETRAIN_LEASE_S); nothing was published.")
            final = releases.publish_release(staging, settings.production_models_dir, manifest["version"])
            write_training_snapshot(settings, manifest, rows, files)
            if not no_publish:
                releases.set_live(settings.model_dir, final)
        finally:
            lock.release()
        click.echo(json.dumps({"version": manifest["version"], "kind": releases.kind_of(manifest), "path": str(final),
                               "live": not no_publish, "training_rows": manifest["training_rows"],
                               "metrics": manifest["metrics"], "fit_seconds": manifest["fit_seconds"],
                               "segment_ids": {k: v for k, v in manifest["segment_ids"].items()
                                               if k not in ("segments", "vanished")}}, indent=2))

    @app.cli.command("schema")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--role", "roles", multiple=True, metavar="COLUMN=ROLE", help="Override one column's role.")
    @click.option("--exclude", multiple=True, metavar="COLUMN", help="Leave a column out.")
    def schema(path: Path, roles: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        """Show how a customer table's columns are read: each column's role and why (no values are shown)."""
        from portal.ingestion.roles import describe, infer_schema
        from portal.ingestion.rollup import is_order_level, roll_up
        from portal.ingestion.tables import read_table

        overrides = dict(_column_override(r) for r in roles)
        try:
            table = read_table(path)
            learned = infer_schema(table.frame, overrides, exclude)
        except PortalError as exc:
            raise click.ClickException(exc.message) from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{path.name}: {len(table.frame):,} rows, {len(table.frame.columns)} columns"
                   + (f", sheet {table.sheet!r}" if table.sheet else ""))
        width = max(len(c.name) for c in learned.columns)
        for row in describe(learned):
            click.echo(f"  {row['column']:<{width}}  {row['role']:<16}  {row['reason']}")
        if is_order_level(table.frame, learned):
            click.echo("  order-level: " + roll_up(table.frame, learned).summary())

    @app.cli.command("retrain")
    def retrain() -> None:
        """Run the quarterly retraining job now (validate, then swap in atomically)."""
        from retraining.job import run_retraining

        report = run_retraining(_services(app).settings, progress=lambda m: click.echo(f"  • {m}"))
        click.echo(report.summary())
        if report.state not in ("succeeded",):
            raise SystemExit(1)

    @app.cli.group("model")
    def model_group() -> None:
        """Inspect and switch model releases."""

    @model_group.command("list")
    def model_list() -> None:
        """Releases in PRODUCTION_MODELS_DIR, newest first; * marks the live one."""
        settings = _services(app).settings
        for info in releases.list_releases(settings.production_models_dir, settings.model_dir):
            metrics = info.metrics
            click.echo(f"{'*' if info.live else ' '} {info.version}  rows={info.rows}  "
                       f"segments={metrics.get('clusters')}  noise={metrics.get('noise_share')}  "
                       f"created={info.created_at}")

    @model_group.command("rollback")
    @click.argument("version")
    def model_rollback(version: str) -> None:
        """Make an earlier release live again."""
        from retraining.job import rollback

        try:
            click.echo(f"live model is now {rollback(_services(app).settings, version)}")
        except PortalError as exc:
            raise click.ClickException(exc.message) from None

    @app.cli.command("sample-data")
    @click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--rows", default=5000, show_default=True)
    @click.option("--seed", default=42, show_default=True)
    def sample_data(out: Path, rows: int, seed: int) -> None:
        """Write a synthetic Singapore customer file (and its answer file) for demos and benchmarks."""
        from portal.segmentation.sample_data import write_sample

        click.echo(str(write_sample(out, rows=rows, seed=seed)))


def _column_override(text: str) -> tuple[str, str]:
    """'COLUMN=ROLE' → (column, role), or a usage error saying how to write it."""
    from portal.ingestion.roles import parse_role_override

    try:
        return parse_role_override(text)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (--role)") from None
