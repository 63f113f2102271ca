"""Decide what `make run` serves: exit 0 when MODEL_DIR serves a release that loads here, 1 when the default
model must be trained from the bundled sample, 2 when the company's own releases cannot be used here.

A company's model is never replaced by the sample's: a live release that fails verification falls back
to the newest release in PRODUCTION_MODELS_DIR that verifies; the sample is trained only when no release
exists at all, or when every release came from the sample alone.
"""

from __future__ import annotations

import logging
import sys

from portal.errors import ReleaseError
from portal.segmentation import releases
from portal.settings import Settings, load_settings

log = logging.getLogger("portal.bootstrap")
SERVE, TRAIN_SAMPLE, REFUSE = 0, 1, 2


def decide(settings: Settings) -> int:
    """SERVE, TRAIN_SAMPLE or REFUSE, after pointing MODEL_DIR at a fallback release where one is needed."""
    live = releases.live_release_dir(settings.model_dir)
    problem = None
    if live is not None:
        try:
            releases.verify_release(live)
            log.info("Serving model %s from %s.", live.name, settings.model_dir)
            return SERVE
        except ReleaseError as exc:
            problem = str(exc)
    fallback = releases.newest_verified_release(settings.production_models_dir, settings.model_dir, exclude=live)
    if fallback is not None:
        releases.set_live(settings.model_dir, fallback)
        if problem:
            log.warning("The live release failed verification (%s). Serving %s instead, the newest release that "
                        "verifies.", problem, fallback.name)
        return SERVE
    known = releases.list_releases(settings.production_models_dir, settings.model_dir)
    if not known and live is None:
        log.info("No model in %s yet: training the default model from the bundled sample.", settings.model_dir)
        return TRAIN_SAMPLE
    sample = settings.sample_data_path.name
    manifests = [releases.read_manifest(info.path) for info in known]
    if live is not None and live.resolve() not in {info.path.resolve() for info in known}:
        try:
            manifests.append(releases.read_manifest(live))
        except ReleaseError:
            manifests.append({})
    if all(set(m.get("sources") or ["?"]) <= {sample} for m in manifests):
        log.warning("%s Rebuilding the default model from the bundled sample.", problem or "No release verifies here.")
        return TRAIN_SAMPLE
    log.error("No release in %s can be served here (%s). Your own model is not replaced by the bundled sample: "
              "rebuild it from your customer file with `make train DATA=customers.xlsx`, or move %s aside to "
              "start from the bundled sample.", settings.production_models_dir,
              problem or "none verifies in this environment", settings.production_models_dir)
    return REFUSE


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return decide(load_settings())


if __name__ == "__main__":
    sys.exit(main())
