"""Exit 0 when MODEL_DIR already serves a release that loads here, 1 when one must be trained.

`make run` calls this before starting gunicorn, so a second `make run` starts in seconds.
"""

from __future__ import annotations

import logging
import sys

from portal.errors import ReleaseError
from portal.segmentation import releases
from portal.settings import load_settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings()
    live = releases.live_release_dir(settings.model_dir)
    if live is None:
        logging.info("No model in %s yet: training the default model from the bundled sample.", settings.model_dir)
        return 1
    try:
        releases.verify_release(live)
    except ReleaseError as exc:
        logging.warning("%s Training a new default model.", exc)
        return 1
    logging.info("Serving model %s from %s.", live.name, settings.model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
