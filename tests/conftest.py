"""Settings for the whole suite.

Hypothesis: no per-example deadline. Its default (200 ms) measures wall time, which a loaded
2-core CI machine running ``pytest -n auto`` can exceed on any example (a store test failed so
once, then passed on the same seed); the tests assert behaviour, and time is measured in
benchmarks/. Budgets (``max_examples``) stay as each test sets them.
"""

from hypothesis import settings

settings.register_profile("rony", deadline=None)
settings.load_profile("rony")
