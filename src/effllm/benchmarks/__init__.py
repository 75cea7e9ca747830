"""Speed benchmarks, one module per benchmark; ``python -m effllm.bench NAME`` runs one.

Each module defines ``run() -> str``: it times something at a lab's sizes on the current
machine and returns a short report (printed by the dispatcher).
"""
