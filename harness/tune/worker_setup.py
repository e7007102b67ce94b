"""What every Ray worker process of a study does once, when Ray starts it (Ray's
`worker_process_setup_hook`, set by harness/tune/session.py): the imports and connections a trial's
process pays for once, so that they count as the worker's start and not as the first trial's time.

- torch._dynamo, which the first optimizer of a process imports lazily (2-4 s on one CPU core);
- scikit-learn's t-SNE and matplotlib's Agg canvas, which figure 5 (drawn by every trial) imports
  lazily (1-4 s together on a loaded core, against under a second for the figure itself);
- the study's MLflow SQLite store (UNIGLOR_TRACKING_URI, set by the driver for its own workers):
  MLflow checks a SQLite store's schema when a process first opens it (about 0.7 s), then reuses it.

A failure here only forgoes the head start (the trial pays the cost itself); it never stops a worker.
"""

from __future__ import annotations

import os

TRACKING_ENV = "UNIGLOR_TRACKING_URI"
HOOK = "harness.tune.worker_setup.setup_worker"


def setup_worker() -> None:
    from harness import tracking
    from harness.loop import import_training_machinery
    import_training_machinery()
    import matplotlib.backends.backend_agg  # noqa: F401
    import sklearn.manifold  # noqa: F401
    # Only a store the driver has already created (see open_existing_store).
    tracking.open_existing_store(os.environ.get(TRACKING_ENV, ""))
