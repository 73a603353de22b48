"""When the loop validates, checkpoints, logs and stops: hand-computed steps for a few configs."""
from __future__ import annotations

from luyen.config import load_config
from luyen.train.cadence import eval_due, log_due, planned, save_due, stop_early


def tc(*overrides):
    return load_config(None, list(overrides)).train


def test_validation_every_epoch_by_default_and_at_the_last_step():
    t = tc()
    assert [s for s in range(1, 26) if eval_due(s, t, total=25, steps_per_epoch=10)] == [10, 20, 25]
    t = tc("train.eval_steps=4")
    assert [s for s in range(1, 11) if eval_due(s, t, total=10, steps_per_epoch=3)] == [4, 8, 10]


def test_checkpoints_at_validations_or_every_save_steps_and_always_for_new_best_weights():
    t = tc()
    assert save_due(10, t, evaluated=True, new_best=False) and not save_due(9, t, evaluated=False, new_best=False)
    t = tc("train.save_steps=3")
    assert [s for s in range(1, 10) if save_due(s, t, evaluated=s == 5, new_best=False)] == [3, 6, 9]
    assert save_due(5, t, evaluated=True, new_best=True)  # the best weights may ship: their checkpoint must exist


def test_metrics_rows_every_logging_steps_at_validations_and_the_end():
    t = tc("train.logging_steps=5")
    assert [s for s in range(1, 13) if log_due(s, t, total=12, validated=s == 7)] == [5, 7, 10, 12]


def test_early_stopping_after_n_validations_without_improvement():
    assert not stop_early(99, tc())  # 0: off
    t = tc("train.early_stopping=2")
    assert [stop_early(n, t) for n in (0, 1, 2, 3)] == [False, False, True, True]


def test_the_plan_counts_what_the_loop_will_do():
    # 25 steps, 10 per epoch: validations at 0 (before training), 10, 20, 25; checkpoints at 10, 20, 25
    assert planned(tc(), total=25, steps_per_epoch=10, validation=True) == {"evals": 4, "saves": 3}
    assert planned(tc(), total=25, steps_per_epoch=10, validation=False) == {"evals": 0, "saves": 3}
    # save_steps 4 over 10 steps: 4, 8, and the final save at 10
    assert planned(tc("train.save_steps=4"), total=10, steps_per_epoch=10, validation=True) == {"evals": 2, "saves": 3}
