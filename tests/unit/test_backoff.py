"""shared.backoff: exponential steps with full jitter, the one rule every retry follows."""

from __future__ import annotations

import pytest
from celery.utils.time import get_exponential_backoff_interval

from shared.backoff import BACKOFF_CAP_S, compute_backoff
from worker.retry import DATABASE_RETRY


@pytest.mark.parametrize(
    ("attempts", "step"), [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (40, 60.0)]
)
def test_compute_backoff_top_of_the_range_doubles_up_to_the_cap(attempts: int, step: float) -> None:
    assert compute_backoff(attempts, rand=lambda: 1.0) == step


def test_compute_backoff_full_jitter_can_be_zero() -> None:
    assert compute_backoff(3, rand=lambda: 0.0) == 0.0


def test_compute_backoff_is_uniform_within_the_step() -> None:
    assert compute_backoff(3, rand=lambda: 0.25) == 2.0


def test_compute_backoff_never_exceeds_the_cap_with_real_randomness() -> None:
    assert all(0 <= compute_backoff(n) <= BACKOFF_CAP_S for n in range(1, 50))


def test_compute_backoff_refuses_zero_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        compute_backoff(0)


@pytest.mark.parametrize("attempts", [1, 2, 3, 5, 6, 40])
def test_celery_retries_of_the_worker_tasks_follow_the_same_steps(attempts: int) -> None:
    celery_step = get_exponential_backoff_interval(
        factor=DATABASE_RETRY["retry_backoff"],
        retries=attempts - 1,
        maximum=DATABASE_RETRY["retry_backoff_max"],
        full_jitter=False,
    )

    assert celery_step == compute_backoff(attempts, rand=lambda: 1.0)
    assert DATABASE_RETRY["retry_jitter"] is True
