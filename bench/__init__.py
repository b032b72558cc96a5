"""Benchmarks of veritee against Keylime 7.14.3, measured side by side in the same run.

``python -m bench [--quick] [--only NAME]`` times each registered benchmark (:mod:`bench.ours`) on the shared
e2e-swtpm evidence bundle, runs Keylime on the same inputs in its own venv (:mod:`bench.keylime_peer`, installed by
``bench/setup_keylime.sh``), and prints our figure, the peer's and the ratio against the targets. Both sides must
reach the right verdict on the good bundle and on tampered variants, or the benchmark is reported invalid.

This package is imported by the peer venv's python too: the modules it uses there (bundle, timing, keylime_peer)
need the standard library only.
"""
