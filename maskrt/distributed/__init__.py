"""Many inputs, every output exactly once: `maskrt batch`, locally or on a Ray cluster.

inputs.py expands SOURCE arguments and names outputs; records.py writes and checks completion
records; state.py holds the job's working files and locks; work.py is the worker (one engine,
many units); ray_pool.py runs workers as Ray actors; batch.py is the driver; summary.py the
report. Ray is optional (`pip install 'maskrt[ray]'`): only ray_pool.py imports it.
"""

from .batch import BatchOptions, run_batch
from .summary import Summary

__all__ = ["BatchOptions", "Summary", "run_batch"]
