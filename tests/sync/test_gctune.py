"""core.gctune: the collector's young-generation threshold is raised while a run is active and restored after
the last one ends, whatever the nesting or the threads."""

import gc
import threading

import pytest

from core.gctune import fewer_collections


@pytest.fixture(autouse=True)
def _restore():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_raised_inside_restored_after():
    gc.set_threshold(700, 10, 10)
    with fewer_collections(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
        with fewer_collections(50_000):  # a nested run shares it
            assert gc.get_threshold() == (50_000, 10, 10)
        assert gc.get_threshold() == (50_000, 10, 10), "still raised while the outer run is active"
    assert gc.get_threshold() == (700, 10, 10)


def test_restored_when_the_block_raises():
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections(50_000):
        raise RuntimeError("a failed run")
    assert gc.get_threshold() == (700, 10, 10)


def test_zero_leaves_the_collector_alone_and_a_disabled_threshold_stays_disabled():
    gc.set_threshold(700, 10, 10)
    with fewer_collections(0):
        assert gc.get_threshold() == (700, 10, 10)
    gc.set_threshold(0, 10, 10)  # someone turned automatic collection off: we do not turn it back on
    with fewer_collections(50_000):
        assert gc.get_threshold()[0] == 0
    gc.set_threshold(100_000, 10, 10)  # already higher: kept
    with fewer_collections(50_000):
        assert gc.get_threshold()[0] == 100_000


def test_concurrent_runs_restore_only_when_the_last_ends():
    gc.set_threshold(700, 10, 10)
    inside, release = threading.Event(), threading.Event()

    def other_run():
        with fewer_collections(50_000):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other_run)
    with fewer_collections(50_000):
        t.start()
        assert inside.wait(5)
    assert gc.get_threshold()[0] == 50_000, "the other thread's run is still active"
    release.set()
    t.join(5)
    assert gc.get_threshold() == (700, 10, 10)
