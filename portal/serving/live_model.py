"""The model a worker serves: loaded and verified from ``MODEL_DIR``, warmed up, hot-reloaded.

A background thread loads the live release when the process starts, then watches the
``model/current`` pointer and loads a new release when it changes, swapping one reference: a request
that already holds the old release finishes on it, and no request ever sees half of each.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from portal.errors import ModelUnavailable, NotFound, ReleaseError
from portal.segmentation import base_distributions, releases
from portal.segmentation.model import SegmentationModel
from portal.segmentation.table_model import TableSegmentationModel

#: The model class of each release kind.
MODEL_CLASSES: dict[str, type[SegmentationModel] | type[TableSegmentationModel]] = {
    releases.LOYALTY: SegmentationModel, releases.TABLE: TableSegmentationModel}

log = logging.getLogger(__name__)
NO_MODEL_HINT = "No model has been trained yet. Run `make train` (or `flask --app app train`) and retry."
LOADING_HINT = "The model {version} is loading (it takes a few seconds after the service starts); retry shortly."


@dataclass
class LiveRelease:
    """One loaded release: the fitted pipeline, its personas and profiles, and its manifest."""

    version: str
    path: Path
    manifest: dict[str, Any]
    model: SegmentationModel | TableSegmentationModel
    personas: dict[int, dict]
    profiles: dict[int, dict]
    loaded_at: float = field(default_factory=time.time)
    warm_up_s: float = 0.0
    #: the training base's distributions (``base_distributions``); None for a release written without them
    base: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        """``loyalty`` (the built-in schema) or ``table`` (a schema learned from the company's own table)."""
        return releases.kind_of(self.manifest)

    def persona(self, cluster_id: int) -> dict:
        try:
            return self.personas[int(cluster_id)]
        except KeyError:
            raise NotFound(f"Segment {cluster_id} does not exist in model {self.version}; "
                           f"valid ids: {sorted(self.personas)}. GET /personas lists them.") from None


def load_release(release_dir: Path, warm_up: bool = True) -> LiveRelease:
    """Verify checksums and environment, then load every artifact (raises ReleaseError)."""
    manifest = releases.verify_release(release_dir)
    try:
        model = MODEL_CLASSES[releases.kind_of(manifest)].load(release_dir)
        personas = joblib.load(release_dir / "cluster_personas.pkl")
        profiles_frame = pd.read_csv(release_dir / "cluster_profiles.csv")
    except Exception as exc:  # a pickle from elsewhere can fail in many ways; none may crash serving
        raise ReleaseError(f"Release {release_dir.name} could not be loaded ({exc.__class__.__name__}: "
                           f"{str(exc)[:200]}). {releases.REBUILD_HINT}") from None
    profiles = {int(r["cluster_id"]): r for r in profiles_frame.to_dict(orient="records")}
    release = LiveRelease(manifest["version"], release_dir, manifest, model, personas, profiles,
                          base=base_distributions.load(release_dir))
    if warm_up:
        try:
            release.warm_up_s = round(model.warm_up(), 3)
        except Exception as exc:
            raise ReleaseError(f"Release {release_dir.name} failed its warm-up placement ({exc.__class__.__name__}: "
                               f"{str(exc)[:200]}). {releases.REBUILD_HINT}") from None
    return release


EDITABLE_PERSONA_FIELDS = ("name", "summary", "suggested_tone", "content_angles")


def apply_persona_overrides(release: LiveRelease, persona_path: Path | None) -> None:
    """Let marketing rename and re-voice personas: PERSONA_PATH outside the release overrides the
    editable fields (name, summary, tone, angles) of matching segments; the aggregates stay the release's."""
    if persona_path is None or not Path(persona_path).is_file():
        return
    path = Path(persona_path).resolve()
    if release.path.resolve() in path.parents:
        return
    try:
        edited = json.loads(path.read_text()) if path.suffix == ".json" else joblib.load(path)
        edited = {int(k): v for k, v in edited.items()}
    except Exception as exc:  # an operator's file: report it, keep serving the release's personas
        log.warning("PERSONA_PATH %s ignored: unreadable (%s)", path, exc.__class__.__name__)
        return
    unknown = sorted(set(edited) - set(release.personas))
    if unknown:
        log.warning("PERSONA_PATH %s ignored: segments %s are not in model %s", path, unknown, release.version)
        return
    for cluster_id, fields in edited.items():
        release.personas[cluster_id] = {**release.personas[cluster_id],
                                        **{k: fields[k] for k in EDITABLE_PERSONA_FIELDS if k in fields}}
    log.info("personas of %d segment(s) edited from %s", len(edited), path)


class ModelHolder:
    """Per-process holder of the live release, with a watcher thread for hot reload."""

    def __init__(self, model_dir: Path, poll_interval_s: float = 2.0, persona_path: Path | None = None,
                 production_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.production_dir = Path(production_dir) if production_dir is not None else None
        self.persona_path = persona_path
        self.poll_interval_s = poll_interval_s
        self._release: LiveRelease | None = None
        target = releases.live_release_dir(self.model_dir)
        self._error: str | None = NO_MODEL_HINT if target is None else LOADING_HINT.format(version=target.name)
        self._warning: str | None = None
        self._pointer: Path | None = None
        self._first_load = threading.Event()
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def release(self) -> LiveRelease | None:
        return self._release

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def warning(self) -> str | None:
        """Why the served release is not the one the live pointer names, when it is not."""
        return self._warning

    def current(self, wait_s: float = 60.0) -> LiveRelease:
        """The live release; waits for the first load, raises ModelUnavailable (503) without one."""
        if self._release is None and self._thread is not None:
            self._first_load.wait(wait_s)
        release = self._release
        if release is None:
            raise ModelUnavailable(self._error or NO_MODEL_HINT)
        return release

    # -- loading -------------------------------------------------------------------------------
    def reload_if_changed(self) -> bool:
        """Load the release the pointer names if it is not the one served; True when swapped.

        The first release serves as soon as it is loaded and warms up afterwards (most requests are
        answered from its placement table, so /health need not wait for numba); a later release is
        warmed up before the swap, so no request pays for the switch.
        """
        with self._load_lock:
            target = releases.live_release_dir(self.model_dir)
            if target is None:
                if self._release is None:
                    self._error = NO_MODEL_HINT
                return False
            if target == self._pointer:
                return False
            self._pointer = target
            first = self._release is None
            if first:
                self._error = LOADING_HINT.format(version=target.name)
            started = time.perf_counter()
            warning = None
            try:
                release = load_release(target, warm_up=not first)
                apply_persona_overrides(release, self.persona_path)
            except ReleaseError as exc:
                self._error = str(exc)
                log.error("model release not loaded: %s", exc)
                fallback = self._fallback(target) if first else None
                if fallback is None:
                    return False
                release = fallback
                warning = (f"The live release {target.name} failed verification; serving {release.version}, "
                           f"the newest release that verifies. {exc}")
                log.warning("%s", warning)
            previous = self._release
            self._release = release
            self._error, self._warning = None, warning
            if first:
                try:
                    release.warm_up_s = round(release.model.warm_up(), 3)
                except Exception as exc:  # it loads but cannot place: withdraw it, /health says why
                    self._release = None
                    self._error = (f"Release {release.version} failed its warm-up placement "
                                   f"({exc.__class__.__name__}: {str(exc)[:200]}). {releases.REBUILD_HINT}")
                    log.error("model release not served: %s", self._error)
                    return False
            log.info("process %d serving model %s (loaded in %.2fs, warm-up %.2fs)%s", os.getpid(),
                     release.version, time.perf_counter() - started, release.warm_up_s,
                     f", replacing {previous.version}" if previous else "")
            return True

    def _fallback(self, broken: Path) -> LiveRelease | None:
        """The newest other release that verifies and loads, so a damaged live release never leaves a worker
        without a model when an earlier one is intact."""
        if self.production_dir is None:
            return None
        candidate = releases.newest_verified_release(self.production_dir, self.model_dir, exclude=broken)
        if candidate is None:
            return None
        try:
            release = load_release(candidate, warm_up=False)
        except ReleaseError as exc:
            log.error("fallback release %s not loaded: %s", candidate.name, exc)
            return None
        apply_persona_overrides(release, self.persona_path)
        return release

    def serve_loaded(self, release: LiveRelease) -> bool:
        """Serve a release already loaded in this process when the pointer names a verified copy of it
        (same version and checksums), instead of unpickling it again; False, and nothing changed, otherwise."""
        with self._load_lock:
            target = releases.live_release_dir(self.model_dir)
            if target is None:
                return False
            try:
                manifest = releases.verify_release(target)
            except ReleaseError:
                return False
            if manifest.get("version") != release.version or manifest.get("files") != release.manifest.get("files"):
                return False
            if self.persona_path is not None and Path(self.persona_path).is_file() and \
                    target.resolve() not in Path(self.persona_path).resolve().parents:
                return False  # its overrides would edit the shared copy
            self._pointer, self._release, self._error, self._warning = target, release, None, None
            return True

    def _run(self) -> None:
        try:
            self.reload_if_changed()
        except Exception:
            log.exception("first model load failed")
        finally:
            self._first_load.set()
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.reload_if_changed()
            except Exception:  # the watcher must outlive any one bad release
                log.exception("model watcher failed; will retry")

    def start(self) -> None:
        """Load in the background and keep watching for new releases (call after any fork)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
