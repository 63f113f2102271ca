"""Flask CLI commands: train, retrain, model list, model rollback, sample-data."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask

from portal.segmentation import releases


def _services(app: Flask):
    return app.extensions["portal"]


def register_cli(app: Flask) -> None:
    """Attach the commands to ``flask --app app ...``."""

    @app.cli.command("train")
    @click.option("--data", "paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="Customer files (.xlsx, .xls, .csv); repeat for several. Default: the bundled sample.")
    @click.option("--no-publish", is_flag=True, help="Write the release but do not make it live.")
    def train(paths: tuple[Path, ...], no_publish: bool) -> None:
        """Fit a new model release and make it live (under the run lock, so it never races a retrain)."""
        from portal.errors import ServiceUnavailable
        from portal.segmentation.training import train_release
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
            staging, manifest, _ = train_release(files, settings.production_models_dir,
                                                 progress=lambda m: click.echo(f"  • {m}"))
            if not lock.still_held():
                raise click.ClickException("The run lock was lost while training (Redis unreachable for longer "
                                           "than RETRAIN_LEASE_S); nothing was published.")
            final = releases.publish_release(staging, settings.production_models_dir, manifest["version"])
            if not no_publish:
                releases.set_live(settings.model_dir, final)
        finally:
            lock.release()
        click.echo(json.dumps({"version": manifest["version"], "path": str(final), "live": not no_publish,
                               "training_rows": manifest["training_rows"], "metrics": manifest["metrics"],
                               "fit_seconds": manifest["fit_seconds"]}, indent=2))

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
        from portal.errors import PortalError
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
