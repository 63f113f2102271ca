"""`make bench`: speed, memory and quality figures for the service, ours beside the seed system's.

Run ``python -m bench.run --help``; bench/README.md says what each section measures.
"""
