"""Model releases on disk: write, verify, publish atomically, point the live model at one, list, prune.

A release is one folder in ``production_models/<version>/`` holding every artifact and a
``manifest.json`` with checksums and the library versions that wrote it. ``MODEL_DIR`` (``model/``)
holds a symlink ``current`` to the live release, replaced with ``os.replace`` (atomic on POSIX), and
stable links (``model/umap.pkl`` → ``current/umap.pkl`` ...) so the seed's paths keep working.
Pickles of umap/numba objects are only safe in the exact environment that wrote them, so loading
refuses a release whose recorded versions differ from the running ones.

The checksums detect corruption and incomplete copies, not a deliberate edit: whoever can rewrite
an artifact can rewrite its checksum too. ``manifest.json`` is therefore not hashed itself; it is
checked for shape instead (every required artifact listed, the environment recorded), and an edited
library version is refused by the environment check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from portal.errors import ReleaseError
from portal.segmentation.model import STAGE_FILES, STATE_FILE
from portal.segmentation.table_model import TABLE_REQUIRED_FILES

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CURRENT_LINK = "current"
REBUILD_HINT = "Rebuild it in this environment with `make train` (or `flask --app app train`)."
#: Libraries whose pickles are only readable by the exact version that wrote them.
PINNED_LIBRARIES = ("numpy", "scipy", "scikit-learn", "numba", "llvmlite", "umap-learn", "pynndescent",
                    "hdbscan", "joblib", "pandas")
PERSONA_FILES = ("cluster_personas.pkl", "cluster_personas.json", "cluster_profiles.csv", "segments.png")
STABLE_LINKS = (*STAGE_FILES, *PERSONA_FILES, MANIFEST)
TMP_PREFIX = ".tmp-"
#: Bumped whenever the features or the saved state change shape; a release of another format is refused.
MODEL_FORMAT = 9
#: Artifacts without which a release cannot serve; the manifest must list (and so checksum) each one.
REQUIRED_FILES = (*STAGE_FILES, STATE_FILE, "cluster_personas.pkl", "cluster_profiles.csv")
#: The two model kinds a manifest's ``kind`` names: the built-in loyalty schema, or a learned table schema.
LOYALTY, TABLE = "loyalty", "table"
REQUIRED_FILES_BY_KIND = {LOYALTY: REQUIRED_FILES,
                          TABLE: (*TABLE_REQUIRED_FILES, "cluster_personas.pkl", "cluster_profiles.csv")}


def kind_of(manifest: dict[str, Any]) -> str:
    """The model kind a release holds (releases written before kinds existed are loyalty models)."""
    return str(manifest.get("kind", LOYALTY))


def runtime_environment() -> dict[str, str]:
    """Versions that decide whether a pickle written elsewhere can be read here."""
    env = {"python": platform.python_version(), "model_format": str(MODEL_FORMAT)}
    for name in PINNED_LIBRARIES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "missing"
    return env


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_version(now: datetime | None = None) -> str:
    """Sortable, unique release id: UTC timestamp plus a short random suffix."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def new_staging_dir(production_dir: Path) -> Path:
    """A temporary folder on the same filesystem as the releases, so publishing is a rename."""
    production_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=production_dir))


def write_manifest(release_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add checksums of every file and the environment, then write manifest.json."""
    files = sorted(p for p in release_dir.iterdir() if p.is_file() and p.name != MANIFEST)
    manifest = {**manifest, "environment": runtime_environment(),
                "files": {p.name: sha256_of(p) for p in files}}
    (release_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def read_manifest(release_dir: Path) -> dict[str, Any]:
    path = release_dir / MANIFEST
    if not path.is_file():
        raise ReleaseError(f"{release_dir} has no {MANIFEST}; it is not a complete release. {REBUILD_HINT}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"{path} is unreadable ({exc.__class__.__name__}). {REBUILD_HINT}") from None


def verify_release(release_dir: Path) -> dict[str, Any]:
    """Check checksums and environment; return the manifest or raise ReleaseError saying what differs."""
    manifest = read_manifest(release_dir)
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(manifest.get("environment"), dict):
        raise ReleaseError(f"Release {release_dir.name}: {MANIFEST} lacks its file checksums or environment. "
                           + REBUILD_HINT)
    kind = kind_of(manifest)
    if kind not in REQUIRED_FILES_BY_KIND:
        raise ReleaseError(f"Release {release_dir.name} holds a model of unknown kind {kind!r}. {REBUILD_HINT}")
    unlisted = [name for name in REQUIRED_FILES_BY_KIND[kind] if name not in files]
    if unlisted:
        raise ReleaseError(f"Release {release_dir.name}: {MANIFEST} does not list {', '.join(unlisted)}. "
                           + REBUILD_HINT)
    for name, expected in files.items():
        path = release_dir / name
        if Path(name).name != name:
            raise ReleaseError(f"Release {release_dir.name}: {MANIFEST} names a file outside the release "
                               f"({name!r}). {REBUILD_HINT}")
        if not path.is_file():
            raise ReleaseError(f"Release {release_dir.name} is missing {name}. {REBUILD_HINT}")
        if sha256_of(path) != expected:
            raise ReleaseError(f"Release {release_dir.name}: {name} does not match its checksum "
                               f"(corrupt or modified). {REBUILD_HINT}")
    recorded = manifest.get("environment", {})
    running = runtime_environment()
    differences = [f"{lib} {recorded.get(lib, '?')} (release) vs {running[lib]} (running)"
                   for lib in running if recorded.get(lib) != running[lib]]
    if differences:
        raise ReleaseError(f"Release {release_dir.name} was built with different library versions: "
                           + "; ".join(differences) + ". " + REBUILD_HINT)
    return manifest


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_release(staging_dir: Path, production_dir: Path, version: str) -> Path:
    """Make a staged release permanent under its version name (a rename on the same filesystem)."""
    _fsync_tree(staging_dir)
    final = production_dir / version
    os.rename(staging_dir, final)
    _fsync_tree(production_dir)
    return final


def set_live(model_dir: Path, release_dir: Path) -> None:
    """Point ``model/current`` at a release atomically; readers see the old or the new, never a mix."""
    model_dir.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(release_dir.resolve(), model_dir.resolve())
    temp_link = model_dir / f".{CURRENT_LINK}-{uuid.uuid4().hex[:8]}"
    os.symlink(target, temp_link)
    try:
        os.replace(temp_link, model_dir / CURRENT_LINK)
    except OSError:
        temp_link.unlink(missing_ok=True)
        raise
    for name in STABLE_LINKS:
        link = model_dir / name
        if not link.is_symlink() and not link.exists():
            os.symlink(f"{CURRENT_LINK}/{name}", link)
    fd = os.open(model_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("live model is now %s", release_dir.name)


def live_release_dir(model_dir: Path) -> Path | None:
    """The folder the live pointer resolves to, or None when no model has been published."""
    link = model_dir / CURRENT_LINK
    if link.is_symlink() or link.is_dir():
        resolved = link.resolve()
        return resolved if resolved.is_dir() else None
    if (model_dir / MANIFEST).is_file():  # a release copied straight into MODEL_DIR
        return model_dir.resolve()
    return None


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    path: Path
    created_at: str | None
    rows: int | None
    live: bool
    metrics: dict[str, Any]


def list_releases(production_dir: Path, model_dir: Path) -> list[ReleaseInfo]:
    """Every complete release, newest first."""
    live = live_release_dir(model_dir)
    out: list[ReleaseInfo] = []
    if not production_dir.is_dir():
        return out
    for folder in sorted(production_dir.iterdir(), reverse=True):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            manifest = read_manifest(folder)
        except ReleaseError:
            continue
        out.append(ReleaseInfo(folder.name, folder, manifest.get("created_at"),
                               manifest.get("training_rows"), live == folder.resolve(),
                               manifest.get("metrics", {})))
    return out


def newest_verified_release(production_dir: Path, model_dir: Path, exclude: Path | None = None) -> Path | None:
    """The newest release that verifies here (checksums and environment), other than ``exclude``: what serves
    when the live one is damaged, so a company's own model is never replaced by the bundled sample's."""
    for info in list_releases(production_dir, model_dir):
        if exclude is not None and info.path.resolve() == Path(exclude).resolve():
            continue
        try:
            verify_release(info.path)
        except ReleaseError:
            continue
        return info.path
    return None


def clean_stale_staging(production_dir: Path) -> int:
    """Remove temporary folders left by a run that was killed; returns how many."""
    removed = 0
    if production_dir.is_dir():
        for folder in production_dir.glob(TMP_PREFIX + "*"):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def prune_releases(production_dir: Path, model_dir: Path, keep: int) -> list[str]:
    """Delete the oldest releases beyond ``keep``, never the live one."""
    removed = []
    for info in list_releases(production_dir, model_dir)[keep:]:
        if not info.live:
            shutil.rmtree(info.path, ignore_errors=True)
            removed.append(info.version)
    return removed
