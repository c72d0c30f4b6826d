"""Generated multi-hop questions over short generated contexts (for the ``multihop`` suite).

A small consistent world of invented people, cities, countries and currencies is drawn
from a seed; every relation is a function (one mentor per person, one country per city,
…), so each question has exactly one answer. A question follows a path of 3 or 4
relations from a person, e.g. ``What is the country of the birthplace of the mentor of
Brenvo?``; the gold answer of every hop is known (the intermediate answers are all but
the last). The context holds the facts on the path plus distractor facts from the same
world, shuffled. Names are made of random syllables so no world knowledge helps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_SYLLABLES = [
    "bar", "bel", "cor", "dan", "del", "fen", "gar", "hal", "jor", "kel", "lam", "lor", "mar", "mel", "nor",
    "ost", "pel", "quin", "ral", "sar", "tal", "tor", "ul", "var", "vel", "wen", "yor", "zan", "ir", "esk",
]  # fmt: skip


@dataclass(frozen=True)
class Relation:
    """A functional relation: ``source`` type -> ``target`` type, with its fact and phrase templates."""

    name: str
    source: str
    target: str
    fact: str  # str.format(a=source, b=target)
    phrase: str  # str.format(x=noun phrase of the source)


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in [
        Relation("mentor", "person", "person", "{a}'s mentor is {b}.", "the mentor of {x}"),
        Relation("friend", "person", "person", "{a}'s best friend is {b}.", "the best friend of {x}"),
        Relation("birthplace", "person", "city", "{a} was born in {b}.", "the birthplace of {x}"),
        Relation("country", "city", "country", "{a} is a city in {b}.", "the country of {x}"),
        Relation("mayor", "city", "person", "The mayor of {a} is {b}.", "the mayor of {x}"),
        Relation("capital", "country", "city", "The capital of {a} is {b}.", "the capital of {x}"),
        Relation("currency", "country", "currency", "The currency of {a} is the {b}.", "the currency of {x}"),
    ]
}


@dataclass(frozen=True)
class MultiHopQuestion:
    """One generated question: its context facts, the question, and the gold answer of each hop."""

    facts: list[str]
    question: str
    hops: list[str]  # relation names along the path
    answers: list[str]  # gold answer after each hop; the last is the final answer

    @property
    def intermediate(self) -> list[str]:
        """Gold answers of every hop but the last."""
        return self.answers[:-1]

    @property
    def final(self) -> str:
        """The gold final answer."""
        return self.answers[-1]


class World:
    """A random consistent world: entities by type and one value per (relation, entity)."""

    def __init__(self, rng: random.Random, *, people: int = 10, cities: int = 6, countries: int = 3) -> None:
        used: set[str] = set()

        def names(k: int, parts: int) -> list[str]:
            out: list[str] = []
            while len(out) < k:
                name = "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()
                if name not in used:
                    used.add(name)
                    out.append(name)
            return out

        self.entities: dict[str, list[str]] = {
            "person": names(people, 2),
            "city": names(cities, 3),
            "country": names(countries, 2),
            "currency": [n.lower() for n in names(countries, 2)],
        }
        persons, cities_, countries_ = self.entities["person"], self.entities["city"], self.entities["country"]
        self.values: dict[tuple[str, str], str] = {}
        for p in persons:
            self.values[("mentor", p)] = rng.choice([q for q in persons if q != p])
            self.values[("friend", p)] = rng.choice([q for q in persons if q != p])
            self.values[("birthplace", p)] = rng.choice(cities_)
        # every country gets at least one city; its capital is one of its cities
        shuffled = cities_[:]
        rng.shuffle(shuffled)
        for i, c in enumerate(shuffled):
            self.values[("country", c)] = countries_[i] if i < len(countries_) else rng.choice(countries_)
            self.values[("mayor", c)] = rng.choice(persons)
        for k, money in zip(countries_, self.entities["currency"], strict=True):
            own = [c for c in cities_ if self.values[("country", c)] == k]
            self.values[("capital", k)] = rng.choice(own)
            self.values[("currency", k)] = money

    def fact(self, relation: str, entity: str) -> str:
        """The sentence stating ``relation`` of ``entity``."""
        rel = RELATIONS[relation]
        return rel.fact.format(a=entity, b=self.values[(relation, entity)])

    def all_facts(self) -> list[tuple[str, str]]:
        """Every (relation, entity) pair of the world."""
        return list(self.values)


def make_question(rng: random.Random, hops: int, *, distractors: int | None = None) -> MultiHopQuestion:
    """A question of ``hops`` relations (3 or 4 in the suite) over a fresh world drawn from ``rng``."""
    if hops < 1:
        raise ValueError("hops must be at least 1")
    for _ in range(1000):
        world = World(rng)
        start = rng.choice(world.entities["person"])
        path: list[str] = []
        seen = {start}
        current, kind = start, "person"
        answers: list[str] = []
        for h in range(hops):
            options = [
                r
                for r in RELATIONS.values()
                if r.source == kind
                and (r.target != "currency" or h == hops - 1)
                and world.values[(r.name, current)] not in seen
            ]
            if not options:
                break
            # favour hops that change the entity type, so paths mix people, places and money
            rel = rng.choices(options, weights=[1 if r.source == r.target else 2 for r in options])[0]
            path.append(rel.name)
            nxt = world.values[(rel.name, current)]
            answers.append(nxt)
            seen.add(nxt)
            current, kind = nxt, rel.target
        if len(path) != hops:
            continue
        phrase = start
        entities = [start, *answers]
        for rel_name in path:
            phrase = RELATIONS[rel_name].phrase.format(x=phrase)
        wh = "Who" if kind == "person" else "What"
        question = f"{wh} is {phrase}?"
        needed = [(rel_name, entities[i]) for i, rel_name in enumerate(path)]
        others = [f for f in world.all_facts() if f not in needed]
        k = min(len(others), distractors if distractors is not None else 2 * hops)
        chosen = needed + rng.sample(others, k)
        rng.shuffle(chosen)
        return MultiHopQuestion(
            facts=[world.fact(rel, ent) for rel, ent in chosen], question=question, hops=path, answers=answers
        )
    raise RuntimeError(f"could not draw a {hops}-hop path")  # pragma: no cover - practically unreachable
