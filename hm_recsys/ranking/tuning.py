"""Optuna search over CatBoost depth, learning rate, L2 and iterations, judged by MAP@12 on the newest week.

The newest labelled training week is held out: each trial trains on the older weeks and ranks the held-out
week's candidates, exactly as the final model will rank week W. TPE is seeded and trials run one at a time,
so the same frames and seed give the same trials.

A small budget has to count: the first trials are fixed (last week's best parameters, then CatBoost's
defaults), TPE proposes the rest after ``n_startup_trials`` (Optuna's default of 10 random trials would leave
TPE idle at 6 trials), and a trial whose MAP@12 on the held-out week's candidates trails the median of the
finished trials at the same tree count is stopped early (pruned; CPU only, CatBoost has no callbacks on GPU).

On the same held-out week the best trial's model then chooses how far ``final`` leans on the heuristic order the
candidates carry (``blend.choose_blend``): on small data the ranker alone can fall below that heuristic.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable

import optuna
import polars as pl

from hm_recsys.metrics import K, map_at_k
from hm_recsys.ranking.blend import BLEND_WEIGHTS, choose_blend
from hm_recsys.ranking.features import LABEL, WEEK_COLUMN
from hm_recsys.ranking.labels import DEFAULT_NEGATIVES, training_set
from hm_recsys.ranking.ranker import (
    DEFAULT_OBJECTIVE,
    DEFAULT_PARAMS,
    DEFAULT_THREADS,
    EVAL_METRIC,
    POINTWISE,
    default_task_type,
    score,
    top_k,
    train_ranker,
)

# name -> (low, high, log scale); iterations is stepped by 50.
SEARCH_SPACE: dict[str, tuple[float, float, bool]] = {
    "depth": (4, 8, False),
    "learning_rate": (0.02, 0.3, True),
    "l2_leaf_reg": (1.0, 30.0, True),
    "iterations": (50, 300, False),
}
ITERATION_STEP = 50
# The pruner looks at the held-out MAP every REPORT_EVERY trees (CatBoost's metric_period), from PRUNE_AFTER
# trees on, once PRUNE_AFTER_TRIALS trials have finished (the fixed warm-start and default trials).
REPORT_EVERY = 10
PRUNE_AFTER = 40
PRUNE_AFTER_TRIALS = 2


@dataclass(frozen=True)
class TuningResult:
    best_params: dict
    best_map: float
    trials: pl.DataFrame  # number, state, map_at_12, seconds, pruned_at, then one column per searched parameter
    blend_weight: float = 0.0  # final's weight of the heuristic order (blend.blend_top_k); 0 = the ranker alone
    blend_maps: dict[float, float] | None = None  # held-out MAP@12 per blend weight tried (None: no blend)

    @property
    def pruned(self) -> int:
        return int((self.trials["state"] == "PRUNED").sum())


def split_newest_week(frames: list[pl.DataFrame]) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """(older weekly frames, the newest one) by ``week_start``; each frame must hold a single week."""
    if len(frames) < 2:
        raise ValueError(
            f"tuning needs at least 2 labelled weeks (train on older, validate on newest), got {len(frames)}"
        )
    starts = []
    for i, frame in enumerate(frames):
        values = frame[WEEK_COLUMN].unique()
        if values.len() != 1:
            raise ValueError(f"frame {i}: expected one {WEEK_COLUMN}, found {values.to_list()}")
        starts.append(values[0])
    if len(set(starts)) != len(starts):
        raise ValueError(f"two frames hold the same week: {sorted(starts)}")
    newest = max(range(len(frames)), key=starts.__getitem__)
    return [f for i, f in enumerate(frames) if i != newest], frames[newest]


def validation_map(model, valid_frame: pl.DataFrame, purchases: pl.DataFrame | None = None, k: int = K) -> float:
    """MAP@k of the model's top-k over ``purchases`` (the week's buyer-article pairs).

    Without ``purchases`` the frame's positive rows stand in: then buyers none of whose purchases is a
    candidate are left out, so the figure is higher than the true MAP but orders models the same way.
    """
    return map_at_k(top_k(score(model, valid_frame), k), _truth(valid_frame, purchases), k)


def _truth(valid_frame: pl.DataFrame, purchases: pl.DataFrame | None) -> pl.DataFrame:
    return purchases if purchases is not None else valid_frame.filter(pl.col(LABEL) > 0)


def clip_params(params: dict, space: dict[str, tuple[float, float, bool]]) -> dict:
    """``params`` moved into ``space`` (integers onto their grid), so Optuna can enqueue them as a trial."""
    out = {}
    for name, (low, high, _) in space.items():
        if name not in params:
            continue
        value = min(max(params[name], low), high)
        if name == "iterations":
            top = int(low) + (int(high) - int(low)) // ITERATION_STEP * ITERATION_STEP
            value = min(int(low) + round((value - low) / ITERATION_STEP) * ITERATION_STEP, top)
        out[name] = int(round(value)) if name in ("iterations", "depth") else float(value)
    return out


class _PruningCallback:
    """CatBoost callback: reports each new held-out MAP@12 to the trial; stops training when it should be pruned."""

    def __init__(self, trial: optuna.Trial):
        self.trial, self.reported, self.pruned_at = trial, 0, None

    def after_iteration(self, info) -> bool:
        history = info.metrics.get("validation", {}).get(EVAL_METRIC, [])
        if len(history) == self.reported:
            return True
        self.reported = len(history)
        self.trial.report(history[-1], info.iteration)
        if self.trial.should_prune():
            self.pruned_at = info.iteration
            return False
        return True


def _suggest(trial: optuna.Trial, space: dict[str, tuple[float, float, bool]]) -> dict:
    params = {}
    for name, (low, high, log) in space.items():
        if name == "iterations":
            params[name] = trial.suggest_int(name, int(low), int(high), step=ITERATION_STEP)
        elif name == "depth":
            params[name] = trial.suggest_int(name, int(low), int(high))
        else:
            params[name] = trial.suggest_float(name, low, high, log=log)
    return params


def tune_ranker(
    frames: list[pl.DataFrame],
    *,
    n_trials: int = 6,
    seed: int = 0,
    objective: str = DEFAULT_OBJECTIVE,
    task_type: str | None = None,
    thread_count: int = DEFAULT_THREADS,
    search_space: dict[str, tuple[float, float, bool]] | None = None,
    negatives_per_group: int | None = DEFAULT_NEGATIVES,
    valid_purchases: pl.DataFrame | None = None,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
    start_from_defaults: bool = True,
    warm_start: dict | None = None,
    n_startup_trials: int | None = None,
    prune: bool = True,
    blend_weights: tuple[float, ...] | None = BLEND_WEIGHTS,
    valid_popular: list[int] | None = None,
) -> TuningResult:
    """Search CatBoost hyper-parameters on labelled weekly frames (``attach_labels`` output, one per week).

    ``valid_purchases`` = ``weeks.labels(tx, newest week)`` gives the true MAP@12 (see ``validation_map``);
    ``callbacks`` run after every trial (e.g. to log it to MLflow). ``warm_start`` (last week's best parameters,
    clipped into the space) is trial 0 and ``start_from_defaults`` makes the next one ``DEFAULT_PARAMS``, so a
    small budget never returns worse than either on the held-out week: on the demo world 5 TPE trials alone
    picked 50 trees (MAP 0.179 vs 0.185 with the defaults). ``n_startup_trials`` (default a third of the
    trials, at least 1; the fixed trials count) are random before TPE proposes. ``prune`` stops trials that
    trail (see the module docstring); a pruned trial has no ``map_at_12`` and is never the best.
    ``blend_weights``: the best trial's model, on the held-out week, chooses among them ``final``'s weight of the
    heuristic order (``blend.choose_blend``; None: no blend, weight 0); ``valid_popular`` = ``popular_articles``
    of the held-out week, its fill list (the heuristic's order then is ``baselines.repurchase_popular``'s).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    older, newest = split_newest_week(frames)
    train = training_set(
        older,
        drop_groups_without_positive=objective != POINTWISE,
        negatives_per_group=negatives_per_group,
        seed=seed,
    )
    space = search_space or SEARCH_SPACE
    task_type = task_type or default_task_type()
    # the pruner's view: every candidate of the held-out buyers who bought one (the others score 0 whatever the order)
    watch = training_set([newest], negatives_per_group=None) if prune and task_type == "CPU" else None
    seconds: dict[int, float] = {}
    pruned_at: dict[int, int] = {}
    best: dict = {}  # the best finished trial so far: its number, value and model (the first of equals, as Optuna's)

    def evaluate(trial: optuna.Trial) -> float:
        params = _suggest(trial, space)
        began = time.perf_counter()
        pruning = [_PruningCallback(trial)] if watch is not None else None
        model = train_ranker(train, params, objective, seed, task_type, thread_count=thread_count,
                             eval_frame=watch, callbacks=pruning, metric_period=REPORT_EVERY)
        if pruning and pruning[0].pruned_at is not None:
            seconds[trial.number], pruned_at[trial.number] = time.perf_counter() - began, pruning[0].pruned_at
            raise optuna.TrialPruned(f"held-out MAP@12 below the median at {pruning[0].pruned_at} trees")
        value = validation_map(model, newest, valid_purchases)
        seconds[trial.number] = time.perf_counter() - began
        if not best or value > best["value"]:
            best.update(number=trial.number, value=value, model=model)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = max(1, n_trials // 3) if n_startup_trials is None else n_startup_trials
    with warnings.catch_warnings():  # multivariate TPE is "experimental" since Optuna 2.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_AFTER)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    fixed = [clip_params(warm_start, space)] if warm_start else []
    defaults = clip_params(DEFAULT_PARAMS, space)
    if start_from_defaults and defaults not in fixed:
        fixed.append(defaults)
    for params in fixed:
        study.enqueue_trial(params)
    study.optimize(evaluate, n_trials=n_trials, n_jobs=1, callbacks=callbacks)
    trials = pl.DataFrame(
        [
            {
                "number": t.number,
                "state": t.state.name,
                "map_at_12": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
                "seconds": seconds.get(t.number),
                "pruned_at": pruned_at.get(t.number),
                **t.params,
            }
            for t in study.trials
        ],
        schema_overrides={"map_at_12": pl.Float64, "seconds": pl.Float64, "pruned_at": pl.Int64},
    )
    assert best["number"] == study.best_trial.number
    choice = (choose_blend(score(best["model"], newest), _truth(newest, valid_purchases), blend_weights,
                           valid_popular)
              if blend_weights else None)
    return TuningResult(best_params=dict(study.best_params), best_map=float(study.best_value), trials=trials,
                        blend_weight=choice.weight if choice else 0.0, blend_maps=choice.maps if choice else None)
