"""Features and ranking steps give the cores to the week runs: only in a step's own process, only for their stages."""

import multiprocessing
import os
import threading

from hm_recsys.defs.jobs import STAGE_TAG
from hm_recsys.defs.priority import STAGE_NICENESS, yield_cpu

MAX_NICE = 19  # Linux


def _thread_nices():
    return sorted(os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task"))


def _child(stage, queue):
    started, stop = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (started.set(), stop.wait()))  # a pool thread started before the step
    worker.start()
    started.wait()
    before = _thread_nices()
    applied = yield_cpu({STAGE_TAG: stage} if stage else {})
    after = _thread_nices()
    stop.set()
    worker.join()
    queue.put((applied, before, after))


def _in_spawned_child(stage):
    ctx = multiprocessing.get_context("spawn")  # as the multiprocess executor starts each step
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(stage, queue))
    proc.start()
    out = queue.get(timeout=600)  # the child imports dagster: slow on a loaded machine
    proc.join(timeout=60)
    return out


def test_ranking_and_features_steps_lower_their_own_process_only():
    assert STAGE_NICENESS["ranking"] > 0 and STAGE_NICENESS["features"] > 0
    for stage in ("ranking", "features"):
        applied, before, after = _in_spawned_child(stage)
        assert applied == STAGE_NICENESS[stage]
        assert after == [min(n + applied, MAX_NICE) for n in before]  # every thread (capped for a niced pytest)
    for stage in ("week", "tables", None):
        applied, before, after = _in_spawned_child(stage)
        assert applied == 0 and after == before


def test_a_process_that_runs_other_steps_keeps_its_priority():
    before = os.nice(0)
    assert yield_cpu({STAGE_TAG: "ranking"}) == 0  # pytest's process: not a multiprocessing child
    assert yield_cpu({STAGE_TAG: "ranking"}, own_process=False) == 0
    assert os.nice(0) == before
