"""Foundation workloads: the baselines on their own, to watch the runtime."""

from __future__ import annotations

from ..baselines import dict_lock_rmw_tuned, dict_lock_rmw_usual, itertools_count, locked_counter
from ..harness import Workload

WORKLOADS = [
    Workload(
        name="shared_counter",
        group="baseline",
        description="increment one shared counter",
        baseline="Lock+int",
        variants=(locked_counter(), itertools_count()),
    ),
    Workload(
        name="dict_rmw",
        group="baseline",
        description="read-modify-write of a dict counter over 1024 keys",
        baseline="dict+Lock (d.get)",
        variants=(dict_lock_rmw_usual(), dict_lock_rmw_tuned()),
    ),
]
