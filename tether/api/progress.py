"""A progress bar over finished episodes with a live mean reward (rich, on stderr)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from tether.types import Episode


class EpisodeProgress:
    """``with EpisodeProgress(total, label) as bar: bar.advance(episode)``; silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total = total
        self.label = label
        self.rewards: list[float] = []
        self._progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("reward {task.fields[reward]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            if enabled
            else None
        )
        self._task: TaskID | None = None

    def __enter__(self) -> EpisodeProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, reward="–")
        return self

    def advance(self, episode: Episode) -> None:
        """Count one finished episode."""
        if episode.reward is not None:
            self.rewards.append(episode.reward)
        if self._progress is not None and self._task is not None:
            mean = f"{sum(self.rewards) / len(self.rewards):.3f}" if self.rewards else "–"
            self._progress.update(self._task, advance=1, reward=mean)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
