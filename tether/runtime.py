"""Process-wide runtime settings tether applies once, when the first agent opens.

**Garbage collection.** An agent loop allocates many short-lived objects (steps, messages,
LangGraph tasks and checkpoints), and with a hundred concurrent episodes the default
thresholds run a collection every few hundred allocations; each full collection also
re-scans everything imported at start-up (torch, transformers, LangGraph), which never
becomes garbage. ``tune_gc`` collects once, freezes the start-up heap out of later
collections (``gc.freeze``, as vLLM does after loading) and raises the first-generation
threshold, so collections become rare and cheap; most garbage is freed by reference
counting anyway. It measured ~20% of the agent loop's CPU time with 100 concurrent
episodes before (``bench/agent_loop.py``). Turn it off with ``TETHER_GC_TUNING=0``.
"""

from __future__ import annotations

import gc

#: first-generation threshold (CPython's default is 700)
GEN0_THRESHOLD = 50_000
_tuned = False


def tune_gc() -> bool:
    """Freeze the current heap and raise the gen-0 threshold, once per process.

    Returns True if this call tuned the collector (False: already tuned, or turned off).
    """
    global _tuned
    if _tuned:
        return False
    from tether.config import get_settings

    if not get_settings().gc_tuning:
        return False
    _tuned = True
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(GEN0_THRESHOLD, gc.get_threshold()[0]), gen1, gen2)
    return True
