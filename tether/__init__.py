"""tether: tool-using LLM agents that learn from their own work.

The public async API::

    import tether

    async with tether.Agent(suite="calc", model="local") as agent:
        episode = await agent.run("What is 12*7-5?")

    episodes = await tether.rollout(tasks, suite="calc", model="local", concurrency=8)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Agent", "rollout", "evaluate", "Task", "Episode", "Step", "Message", "SamplingParams", "__version__"]

if TYPE_CHECKING:
    from tether.api.agent import Agent, rollout
    from tether.api.eval import evaluate
    from tether.types import Episode, Message, SamplingParams, Step, Task


def __getattr__(name: str) -> Any:
    """Import the API lazily so ``import tether`` stays light."""
    if name in ("Agent", "rollout"):
        from tether.api import agent

        return getattr(agent, name)
    if name == "evaluate":
        from tether.api.eval import evaluate

        return evaluate
    if name in ("Task", "Episode", "Step", "Message", "SamplingParams"):
        from tether import types

        return getattr(types, name)
    raise AttributeError(name)
