"""derive_queue_state: every mix of line states, then the run-level facts counts cannot show."""

import itertools

import pytest

from sync.models import QueueState
from sync.services import derive_queue_state, retry_delay

D, P, DONE, F, C = "draft", "processing", "done", "failed", "cancelled"

# Which line states are present (>= 1 line each) -> expected queue state, written out by hand from
# DESIGN.md invariant 3: any processing -> processing; all draft -> draft; all done/cancelled -> done;
# all failed -> failed; some done + some failed -> partial; draft mixed with finished lines -> processing.
EXPECTED = {
    frozenset(): QueueState.DONE,  # an empty fetch is a complete, successful run
    frozenset({D}): QueueState.DRAFT,
    frozenset({P}): QueueState.PROCESSING,
    frozenset({DONE}): QueueState.DONE,
    frozenset({F}): QueueState.FAILED,
    frozenset({C}): QueueState.DONE,
    frozenset({D, P}): QueueState.PROCESSING,
    frozenset({D, DONE}): QueueState.PROCESSING,
    frozenset({D, F}): QueueState.PROCESSING,
    frozenset({D, C}): QueueState.PROCESSING,
    frozenset({P, DONE}): QueueState.PROCESSING,
    frozenset({P, F}): QueueState.PROCESSING,
    frozenset({P, C}): QueueState.PROCESSING,
    frozenset({DONE, F}): QueueState.PARTIAL,
    frozenset({DONE, C}): QueueState.DONE,
    frozenset({F, C}): QueueState.FAILED,  # nothing got in: failed, not partial
    frozenset({D, P, DONE}): QueueState.PROCESSING,
    frozenset({D, P, F}): QueueState.PROCESSING,
    frozenset({D, P, C}): QueueState.PROCESSING,
    frozenset({D, DONE, F}): QueueState.PROCESSING,
    frozenset({D, DONE, C}): QueueState.PROCESSING,
    frozenset({D, F, C}): QueueState.PROCESSING,
    frozenset({P, DONE, F}): QueueState.PROCESSING,
    frozenset({P, DONE, C}): QueueState.PROCESSING,
    frozenset({P, F, C}): QueueState.PROCESSING,
    frozenset({DONE, F, C}): QueueState.PARTIAL,
    frozenset({D, P, DONE, F}): QueueState.PROCESSING,
    frozenset({D, P, DONE, C}): QueueState.PROCESSING,
    frozenset({D, P, F, C}): QueueState.PROCESSING,
    frozenset({D, DONE, F, C}): QueueState.PROCESSING,
    frozenset({P, DONE, F, C}): QueueState.PROCESSING,
    frozenset({D, P, DONE, F, C}): QueueState.PROCESSING,
}


def test_the_table_covers_every_mix():
    states = [D, P, DONE, F, C]
    mixes = {frozenset(c) for r in range(6) for c in itertools.combinations(states, r)}
    assert mixes == set(EXPECTED)


@pytest.mark.parametrize(
    "present", sorted(EXPECTED, key=lambda s: (len(s), sorted(s))), ids=lambda s: "+".join(sorted(s)) or "empty"
)
@pytest.mark.parametrize("n", [1, 3])
def test_every_mix_of_line_states(present, n):
    counts = {s: (n if s in present else 0) for s in (D, P, DONE, F, C)}
    got = derive_queue_state(
        draft=counts[D],
        processing=counts[P],
        done=counts[DONE],
        failed=counts[F],
        cancelled=counts[C],
        fetch_done=True,
        started=True,
    )
    assert got == EXPECTED[present]


def test_all_draft_before_and_after_start_while_fetch_is_done():
    assert derive_queue_state(draft=5, processing=0, done=0, failed=0, cancelled=0, started=False) == QueueState.DRAFT


def test_fetch_still_running():
    kw = dict(processing=0, failed=0, cancelled=0, fetch_done=False)
    assert derive_queue_state(draft=0, done=0, started=False, **kw) == QueueState.DRAFT
    assert derive_queue_state(draft=0, done=0, started=True, **kw) == QueueState.PROCESSING
    # All lines done so far but more pages to come: not done yet.
    assert derive_queue_state(draft=0, done=7, started=True, **kw) == QueueState.PROCESSING


def test_fetch_failed():
    kw = dict(draft=0, processing=0, cancelled=0, fetch_done=True, started=True, fetch_failed=True)
    assert derive_queue_state(done=0, failed=0, **kw) == QueueState.FAILED
    assert derive_queue_state(done=4, failed=0, **kw) == QueueState.PARTIAL  # a page went missing
    assert derive_queue_state(done=0, failed=2, **kw) == QueueState.FAILED
    assert derive_queue_state(done=4, failed=2, **kw) == QueueState.PARTIAL


def test_cancelled_by_user():
    kw = dict(draft=0, failed=1, cancelled=3, fetch_done=True, started=True, cancelled_by_user=True)
    assert derive_queue_state(processing=0, done=2, **kw) == QueueState.CANCELLED
    # Lines still held by a worker: the queue settles when they come back.
    assert derive_queue_state(processing=1, done=2, **kw) == QueueState.PROCESSING


def test_retry_delay_doubles_with_bounded_jitter(settings):
    settings.SYNC_RETRY_BASE_SECONDS = 1.0
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        samples = [retry_delay(attempt) for _ in range(200)]
        assert all(base * 0.8 <= s <= base * 1.2 for s in samples)
        assert len(set(samples)) > 1  # jitter, so retries of many lines do not stampede
    settings.SYNC_RETRY_BASE_SECONDS = 0
    assert retry_delay(3) == 0.0
