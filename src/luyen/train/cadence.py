"""When the training loop validates, checkpoints, logs and stops early: pure functions of the step
and the train config, so the loop and the estimate of a run's cost follow the same rules.

    eval_due(6, tc, total=6, steps_per_epoch=10)        # True: the last step always validates
    save_due(4, tc, evaluated=False, new_best=False)    # True when tc.save_steps divides 4
"""
from __future__ import annotations


def eval_due(step: int, tc, *, total: int, steps_per_epoch: int) -> bool:
    """Validate every tc.eval_steps steps (0: at the end of each epoch), and at the last step."""
    return step == total or step % (tc.eval_steps or steps_per_epoch) == 0


def save_due(step: int, tc, *, evaluated: bool, new_best: bool) -> bool:
    """Checkpoint every tc.save_steps steps (0: at each evaluation step), and whenever validation found
    new best weights: they may be the ones that ship, so their checkpoint must exist."""
    return new_best or (step % tc.save_steps == 0 if tc.save_steps else evaluated)


def log_due(step: int, tc, *, total: int, validated: bool) -> bool:
    """Write a metrics row every tc.logging_steps steps, at every validation and at the last step."""
    return step % tc.logging_steps == 0 or validated or step == total


def stop_early(bad_evals: int, tc) -> bool:
    """Stop after tc.early_stopping validations in a row without a better loss (0: never)."""
    return bool(tc.early_stopping and bad_evals >= tc.early_stopping)


def planned(tc, *, total: int, steps_per_epoch: int, validation: bool) -> dict:
    """Validation passes and checkpoints a run of `total` steps makes (the one at step 0 included; the
    checkpoints of new best weights between the regular ones are not known in advance)."""
    evals = [eval_due(s, tc, total=total, steps_per_epoch=steps_per_epoch) for s in range(1, total + 1)]
    saves = sum(save_due(s, tc, evaluated=e, new_best=False) for s, e in zip(range(1, total + 1), evals))
    return {"evals": 1 + sum(evals) if validation else 0,
            "saves": saves + (not save_due(total, tc, evaluated=True, new_best=False))}  # the final save
