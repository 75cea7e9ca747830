"""Speed benchmarks, one module per benchmark; ``python tools/bench.py NAME`` runs one.

Each module defines ``run() -> str``: it times something at a lab's sizes (read from
:mod:`effllm.presets`, as the lab and its unit tests do) on the current machine and returns a
short report, which the dispatcher prints.
"""
