"""Entry point of every measured child process: ``python -m bench.child module:function '{json args}'``."""

from __future__ import annotations

import time

STARTED = time.time()  # before any heavy import, for cold-start figures

import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def main() -> None:
    module_name, function_name = sys.argv[1].split(":")
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    from bench.common import report

    function = getattr(importlib.import_module(module_name), function_name)
    report(function(**args))


if __name__ == "__main__":
    main()
