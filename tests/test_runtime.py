"""``tether.runtime.tune_gc``: once per process, and off with ``TETHER_GC_TUNING=0``."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tether import runtime
from tether.config import get_settings


@pytest.fixture
def fresh_gc_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run as if no agent had tuned the collector yet; put the collector back afterwards."""
    threshold = gc.get_threshold()
    frozen = gc.get_freeze_count()
    monkeypatch.setattr(runtime, "_tuned", False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    gc.set_threshold(*threshold)
    if not frozen:
        gc.unfreeze()


def test_tune_gc_freezes_and_raises_the_threshold_once(fresh_gc_state: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    assert runtime.tune_gc() is True
    assert gc.get_threshold() == (runtime.GEN0_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0
    gc.set_threshold(700, 10, 10)
    assert runtime.tune_gc() is False  # once per process
    assert gc.get_threshold() == (700, 10, 10)


def test_tune_gc_can_be_turned_off(fresh_gc_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_GC_TUNING", "0")
    gc.set_threshold(700, 10, 10)
    assert runtime.tune_gc() is False
    assert gc.get_threshold() == (700, 10, 10)
