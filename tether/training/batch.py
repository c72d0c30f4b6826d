"""Training batches from stored episodes: selection, token sequences, loss masks, groups.

The trainer trains on the token ids exactly as they were sampled and stored; it never
re-tokenizes text. For each episode the model turns (steps with role ``assistant``) are
merged into ONE sequence when the backend rendered prompts prefix-consistently (turn k's
``prompt_token_ids`` starts with turn k-1's ``prompt_token_ids + token_ids``); the ids
between two turns (tool outputs, chat-template glue) then carry mask 0. Otherwise each
turn becomes its own sequence ``prompt_token_ids + token_ids``.

Per token position ``i`` of a sequence:

* ``loss_mask[i]`` is 1 only for a token the policy sampled (the step's ``loss_mask``),
  0 for prompt, tool output and forced tokens;
* ``old_logprobs[i]`` is the stored rollout log-probability of token ``i`` (0 where the
  mask is 0).

Samples of the same task in the same run form a *group* (GRPO normalises rewards within
it). Episodes whose reward functions failed, that have no reward, or whose model turns
carry no token ids are excluded and counted, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import torch

from tether.store.base import TrajectoryStore
from tether.types import Episode, Step

#: episode statuses that are trained on by default
TRAINABLE_STATUSES: tuple[str, ...] = ("done", "truncated")


async def select_episodes(
    store: TrajectoryStore,
    *,
    run_id: str | None = None,
    suite: str | None = None,
    policy_version: int | None = None,
    status: str | Sequence[str] | None = TRAINABLE_STATUSES,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Episode]:
    """Episodes (with steps) matching every given filter, oldest first.

    ``status`` may be one status, several, or None for any status.
    """
    statuses: list[str | None] = [status] if status is None or isinstance(status, str) else list(status)
    found: list[Episode] = []
    for st in statuses:
        found.extend(
            await store.list_episodes(
                run_id=run_id,
                suite=suite,
                status=st,
                policy_version=policy_version,
                since=since,
                until=until,
                with_steps=True,
            )
        )
    found.sort(key=lambda e: (e.created_at, e.id))
    return found[:limit] if limit is not None else found


@dataclass
class TokenSequence:
    """One training sequence: token ids with a per-position mask and rollout logprobs."""

    input_ids: list[int]
    loss_mask: list[int]
    old_logprobs: list[float]
    #: index of the owning sample in ``EpisodeBatch.samples``
    sample: int = 0

    @property
    def n_trained(self) -> int:
        """Number of positions that carry loss."""
        return sum(self.loss_mask)


@dataclass
class Sample:
    """One episode turned into sequences, with its scalar reward and group."""

    episode_id: str
    group: str
    reward: float
    policy_version: int
    sequences: list[TokenSequence] = field(default_factory=list)


@dataclass
class BatchStats:
    """Counts of what was kept and what was excluded while building a batch."""

    episodes_in: int = 0
    samples: int = 0
    excluded_reward_error: int = 0
    excluded_no_reward: int = 0
    excluded_no_tokens: int = 0
    merged_episodes: int = 0
    split_episodes: int = 0
    truncated_sequences: int = 0

    def as_metrics(self) -> dict[str, float]:
        """The counts as float metrics (prefixed ``batch/``)."""
        return {f"batch/{k}": float(v) for k, v in self.__dict__.items()}


@dataclass
class EpisodeBatch:
    """Samples grouped for training, and the counts of excluded episodes."""

    samples: list[Sample]
    stats: BatchStats

    @property
    def sequences(self) -> list[TokenSequence]:
        """All sequences of all samples, in sample order."""
        return [s for sample in self.samples for s in sample.sequences]

    def rewards(self) -> torch.Tensor:
        """Per-sample rewards, shape [n_samples]."""
        return torch.tensor([s.reward for s in self.samples], dtype=torch.float32)

    def group_ids(self) -> torch.Tensor:
        """Per-sample group index (0..n_groups-1), shape [n_samples]."""
        index: dict[str, int] = {}
        return torch.tensor([index.setdefault(s.group, len(index)) for s in self.samples], dtype=torch.long)


def _turn_checks(step: Step) -> bool:
    n = len(step.token_ids)
    return n > 0 and len(step.logprobs) == n and len(step.prompt_token_ids) > 0


def episode_sequences(episode: Episode, *, max_len: int | None = None) -> tuple[list[TokenSequence], bool, int]:
    """The token sequences of one episode: (sequences, merged, n_truncated).

    Raises ``ValueError`` when a model turn lacks token ids, logprobs or prompt ids.
    """
    turns = episode.model_steps
    if not turns:
        raise ValueError("episode has no model turns")
    for t in turns:
        if not _turn_checks(t):
            raise ValueError(f"model turn {t.index} has no token ids / logprobs / prompt ids")

    def turn_mask(t: Step) -> list[int]:
        if len(t.loss_mask) == len(t.token_ids):
            return [1 if m else 0 for m in t.loss_mask]
        return [1] * len(t.token_ids)

    merged = True
    ids: list[int] = list(turns[0].prompt_token_ids)
    for k, t in enumerate(turns):
        if k > 0 and t.prompt_token_ids[: len(ids)] != ids:
            merged = False
            break
        if k > 0:
            ids = ids + list(t.prompt_token_ids[len(ids) :])
        ids = ids + list(t.token_ids)

    seqs: list[TokenSequence] = []
    if merged:
        ids, mask, lps = (
            list(turns[0].prompt_token_ids),
            [0] * len(turns[0].prompt_token_ids),
            [0.0] * len(turns[0].prompt_token_ids),
        )
        for k, t in enumerate(turns):
            if k > 0:
                gap = list(t.prompt_token_ids[len(ids) :])
                ids += gap
                mask += [0] * len(gap)
                lps += [0.0] * len(gap)
            m = turn_mask(t)
            ids += list(t.token_ids)
            mask += m
            lps += [float(lp) if mk else 0.0 for lp, mk in zip(t.logprobs, m, strict=True)]
        seqs.append(TokenSequence(ids, mask, lps))
    else:
        for t in turns:
            m = turn_mask(t)
            p = list(t.prompt_token_ids)
            seqs.append(
                TokenSequence(
                    p + list(t.token_ids),
                    [0] * len(p) + m,
                    [0.0] * len(p) + [float(lp) if mk else 0.0 for lp, mk in zip(t.logprobs, m, strict=True)],
                )
            )
    n_trunc = 0
    if max_len is not None:
        for s in seqs:
            if len(s.input_ids) > max_len:
                n_trunc += 1
                s.input_ids, s.loss_mask, s.old_logprobs = (
                    s.input_ids[:max_len],
                    s.loss_mask[:max_len],
                    s.old_logprobs[:max_len],
                )
    return seqs, merged, n_trunc


def group_key(episode: Episode) -> str:
    """The group of an episode: samples of the same task in the same run."""
    task_id = episode.task_id or (episode.task.id if episode.task else "")
    return f"{episode.run_id}/{task_id}"


def build_batch(episodes: Iterable[Episode], *, max_len: int | None = None) -> EpisodeBatch:
    """Turn stored episodes into training samples, excluding (and counting) unusable ones."""
    stats = BatchStats()
    samples: list[Sample] = []
    for ep in episodes:
        stats.episodes_in += 1
        if ep.reward_errors:
            stats.excluded_reward_error += 1
            continue
        reward = ep.reward
        if reward is None:
            stats.excluded_no_reward += 1
            continue
        try:
            seqs, merged, n_trunc = episode_sequences(ep, max_len=max_len)
        except ValueError:
            stats.excluded_no_tokens += 1
            continue
        if merged:
            stats.merged_episodes += 1
        else:
            stats.split_episodes += 1
        stats.truncated_sequences += n_trunc
        idx = len(samples)
        for s in seqs:
            s.sample = idx
        samples.append(Sample(ep.id, group_key(ep), float(reward), ep.policy_version, seqs))
    stats.samples = len(samples)
    return EpisodeBatch(samples, stats)


@dataclass
class TensorBatch:
    """Right-padded tensors for a list of sequences, all shaped [n, L] except ``sample``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    old_logprobs: torch.Tensor
    sample: torch.Tensor

    def to(self, device: torch.device | str) -> TensorBatch:
        """Move every tensor to ``device``."""
        return TensorBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def collate(seqs: Sequence[TokenSequence], pad_id: int = 0) -> TensorBatch:
    """Pad ``seqs`` on the right into a ``TensorBatch``."""
    n, length = len(seqs), max(len(s.input_ids) for s in seqs)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    att = torch.zeros((n, length), dtype=torch.long)
    mask = torch.zeros((n, length), dtype=torch.float32)
    old = torch.zeros((n, length), dtype=torch.float32)
    for i, s in enumerate(seqs):
        k = len(s.input_ids)
        ids[i, :k] = torch.tensor(s.input_ids, dtype=torch.long)
        att[i, :k] = 1
        mask[i, :k] = torch.tensor(s.loss_mask, dtype=torch.float32)
        old[i, :k] = torch.tensor(s.old_logprobs, dtype=torch.float32)
    mask[:, 0] = 0.0  # the first token has no context to be predicted from
    sample = torch.tensor([s.sample for s in seqs], dtype=torch.long)
    return TensorBatch(ids, att, mask, old, sample)


def micro_batches(seqs: Sequence[TokenSequence], size: int) -> list[list[TokenSequence]]:
    """Split sequences into micro-batches of at most ``size`` (sorted by length to limit padding)."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].input_ids))
    ordered = [seqs[i] for i in order]
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
