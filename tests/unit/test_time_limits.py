"""The download limit's one thread: a block still running when its limit falls due has its action called, a block
that ended has not, and limits fall due in the order they were set."""

from __future__ import annotations

import threading

from matcher.time_limits import TimeLimits

WAIT = 30.0  # seconds to wait for something that should happen within a fraction of one


def test_a_block_still_running_at_its_limit_has_its_action_called_and_its_entry_removed():
    limits = TimeLimits(0.05)
    expired = threading.Event()
    with limits.limit(expired.set):
        assert expired.wait(WAIT)
        assert limits.pending() == 0
    assert limits.pending() == 0


def test_a_block_that_ended_before_its_limit_is_never_acted_on():
    limits = TimeLimits(0.05)
    ended_early, later = threading.Event(), threading.Event()
    with limits.limit(ended_early.set):
        pass
    assert limits.pending() == 0
    with limits.limit(later.set):
        # The later limit falls due after the first one's time: once it fires, the first one's time has passed.
        assert later.wait(WAIT)
    assert not ended_early.is_set()


def test_limits_fall_due_in_the_order_they_were_set_and_each_once():
    limits = TimeLimits(0.05)
    fired: list[int] = []
    all_fired = threading.Event()

    def action(n: int):
        def act():
            fired.append(n)
            if len(fired) == 5:
                all_fired.set()

        return act

    blocks = [limits.limit(action(n)) for n in range(5)]
    for block in blocks:
        block.__enter__()
    assert all_fired.wait(WAIT)
    for block in blocks:
        block.__exit__(None, None, None)
    assert fired == [0, 1, 2, 3, 4]
    assert limits.pending() == 0


def test_an_action_that_raises_is_logged_and_later_limits_still_fire(caplog):
    limits = TimeLimits(0.05)
    later = threading.Event()

    def broken():
        raise RuntimeError("broken action")

    with limits.limit(broken), limits.limit(later.set):
        assert later.wait(WAIT)
    assert "a time limit's action failed" in caplog.text
