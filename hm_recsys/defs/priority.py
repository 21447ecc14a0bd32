"""CPU priority of a step by its run's stage: the week runs first.

On one machine a week run goes beside a features or ranking run (dagster.yaml: two runs at once), and their steps
compete for the same cores. The week runs are the critical path (one at a time: each week's towers warm-start from
the week before), while a features or ranking run of an earlier week only has to be done before the production
week's ``final``. At full scale the two week runs that had a ranking run beside them took about twice as long as
a week alone (docs/measurements.md, the 2026-12-08 run). So a features or ranking step lowers its own process's
CPU priority: the cores go to the week run first, and what it leaves goes to the other run.

Only where the step has a process of its own, a child of the run worker (the multiprocess executor): a niceness
cannot be raised back without privileges, so a process that runs other steps after it (an in-process run, a
Celery worker's child, a test calling ``dg.materialize``) keeps its priority.
"""

from __future__ import annotations

import multiprocessing
import os

from hm_recsys.defs.jobs import STAGE_TAG

# Niceness added to a step's process by its run's stage (0: unchanged). 10 gives a competing nice-0 process
# about nine tenths of a contested core (Linux CFS weights 1024 vs 110).
STAGE_NICENESS = {"features": 10, "ranking": 10}


def yield_cpu(tags: dict, *, own_process: bool | None = None) -> int:
    """Lower this process's CPU priority by its run's stage (``tags``: the run's tags); returns the increment.

    ``own_process`` None: whether this process is a multiprocessing child (the multiprocess executor's step).
    """
    increment = STAGE_NICENESS.get(tags.get(STAGE_TAG, ""), 0)
    if own_process is None:
        own_process = multiprocessing.parent_process() is not None
    if not increment or not own_process:
        return 0
    _renice_every_thread(increment)
    return increment


def _renice_every_thread(increment: int) -> None:
    """On Linux a niceness belongs to a thread, and thread pools that loading the step's inputs started (polars',
    arrow's) would keep the old one: renice each of this process's threads. New threads inherit their creator's."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except FileNotFoundError:  # no procfs: the process's priority is all there is
        os.nice(increment)
        return
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        except ProcessLookupError:  # the thread ended meanwhile
            pass
