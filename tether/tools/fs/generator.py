"""Seeded synthetic long-context corpora with planted, verifiable facts.

A ``World`` (people, managers, offices, projects, incident reports, shipments) is drawn
from a seed; ``iter_documents`` turns it into documents padded with filler prose that
shares surface words with the facts (names, teams, cities, "manager", "office",
"incident report", "shipped"), and ``questions`` derives questions whose gold answers
come from the world, never from reading the text back:

- ``needle``: "What is the access code for Project Amber Falcon?" (one document holds it;
  others mention the project, its *archive* code, or a look-alike project's access code)
- ``multihop``: "In which city is the office of X's manager?" (X's profile names the manager
  and a *former* manager; the manager's office note names the office and a *former* office)
- ``count``: "How many incident reports did the Harbor team file in 2023?" (follow-ups
  that mention a report and reports of other years/teams are distractors)
- ``sum``: "How many units did the Harbor team ship in total in 2023?" (planned shipments
  and other years/teams are distractors)

Canonical fact sentences (what the expert greps for) start a line and occur only where
planted; filler never forms them. Everything is deterministic for ``(size, seed, doc_tokens)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tether.tools.fs.corpus import Document

GENERATOR_VERSION = 1
QTYPES = ("needle", "multihop", "count", "sum")
TEAMS = (
    "Harbor",
    "Juniper",
    "Cobalt",
    "Meridian",
    "Lantern",
    "Summit",
    "Quarry",
    "Willow",
    "Falcon",
    "Granite",
    "Orchid",
    "Beacon",
)
CITIES = (
    "Lisbon",
    "Oslo",
    "Nairobi",
    "Osaka",
    "Quito",
    "Tallinn",
    "Auckland",
    "Porto",
    "Denver",
    "Cork",
    "Bergen",
    "Lyon",
    "Perth",
    "Halifax",
    "Tucson",
    "Graz",
    "Kyoto",
    "Leeds",
    "Malmo",
    "Cusco",
)
ADJECTIVES = (
    "Amber",
    "Silent",
    "Crimson",
    "Hollow",
    "Bright",
    "Iron",
    "Silver",
    "Velvet",
    "Rapid",
    "Quiet",
    "Golden",
    "Frozen",
    "Hidden",
    "Lunar",
    "Solar",
    "Copper",
    "Ivory",
    "Scarlet",
    "Misty",
    "Northern",
    "Wild",
    "Azure",
)
ANIMALS = (
    "Falcon",
    "Otter",
    "Heron",
    "Lynx",
    "Badger",
    "Marten",
    "Raven",
    "Bison",
    "Gecko",
    "Ibis",
    "Kestrel",
    "Newt",
    "Osprey",
    "Puma",
    "Stoat",
    "Tapir",
    "Vole",
    "Wren",
    "Yak",
    "Zebu",
    "Egret",
    "Finch",
    "Hare",
)
YEARS = (2021, 2022, 2023, 2024)
_ONSETS = (
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "kr",
    "st",
    "tr",
    "sh",
    "th",
    "gr",
    "pl",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "m", "k", "th", "x")


@dataclass
class Profile:
    """An employee profile: the person, their manager and a former manager."""

    person: str
    manager: str
    former: str
    team: str


@dataclass
class DocSpec:
    """The skeleton of one document (kind + facts); filler is added when it is rendered."""

    kind: str
    date: str
    facts: dict[str, Any]


@dataclass
class Question:
    """One question with its gold answer and where the evidence lives."""

    id: str
    qtype: str
    question: str
    gold: str | int
    evidence: list[str] = field(default_factory=list)


@dataclass
class World:
    """Everything a corpus states, drawn from a seed."""

    size: int
    seed: int
    doc_tokens: int
    specs: list[DocSpec]
    profiles: list[Profile]
    offices: dict[str, str]
    codes: dict[str, str]
    incident_counts: dict[tuple[str, int], int]
    shipped: dict[tuple[str, int], int]
    doc_ids: dict[str, list[str]] = field(default_factory=dict)


def _name_part(rng: random.Random, syllables: int) -> str:
    s = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)
    return s.capitalize()


def _names(rng: random.Random, n: int) -> list[str]:
    firsts = sorted({_name_part(rng, rng.choice((1, 2))) for _ in range(400)})
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        name = f"{rng.choice(firsts)} {_name_part(rng, rng.choice((2, 2, 3)))}"
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _date(rng: random.Random, year: int | None = None) -> str:
    y = year if year is not None else rng.choice(YEARS)
    return f"{y}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _code(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(1000, 9999)}"


def build_world(size: int, seed: int = 0, doc_tokens: int = 1000) -> World:
    """Draw the world of a ``size``-document corpus from ``seed``."""
    if size < 40:
        raise ValueError("a longctx corpus needs at least 40 documents")
    rng = random.Random(f"longctx-world-{seed}-{size}")
    n_profiles = max(8, int(size * 0.30))
    n_managers = max(4, n_profiles // 10)
    n_projects = max(6, int(size * 0.04))
    n_incidents = max(12, int(size * 0.12))
    n_shipments = max(12, int(size * 0.12))
    names = _names(rng, n_profiles + n_managers)
    managers, people = names[:n_managers], names[n_managers:]
    offices = {m: rng.choice(CITIES) for m in managers}
    specs: list[DocSpec] = []
    profiles: list[Profile] = []
    for person in people:
        manager = rng.choice(managers)
        former = rng.choice([m for m in managers if offices[m] != offices[manager]] or managers)
        profile = Profile(person=person, manager=manager, former=former, team=rng.choice(TEAMS))
        profiles.append(profile)
        specs.append(DocSpec("profile", _date(rng), {"p": profile}))
    for m in managers:
        former_city = rng.choice([c for c in CITIES if c != offices[m]])
        visit = rng.choice([c for c in CITIES if c not in (offices[m], former_city)])
        specs.append(DocSpec("office", _date(rng), {"m": m, "city": offices[m], "former": former_city, "visit": visit}))
    codenames: list[str] = []
    seen_codenames: set[str] = set()
    while len(codenames) < n_projects:
        cn = f"{rng.choice(ADJECTIVES)} {rng.choice(ANIMALS)}"
        if len(seen_codenames) >= len(ADJECTIVES) * len(ANIMALS):
            cn = f"{cn} {len(codenames)}"
        if cn not in seen_codenames:
            seen_codenames.add(cn)
            codenames.append(cn)
    codes: dict[str, str] = {}
    used_codes: set[str] = set()
    for cn in codenames:
        code = _code(rng)
        while code in used_codes:
            code = _code(rng)
        used_codes.add(code)
        codes[cn] = code
        specs.append(DocSpec("project", _date(rng), {"project": cn, "code": code}))
        archive = _code(rng)
        specs.append(DocSpec("project_status", _date(rng), {"project": cn, "archive": archive}))
    incident_counts: dict[tuple[str, int], int] = {}
    for _ in range(n_incidents):
        team, year = rng.choice(TEAMS), rng.choice(YEARS)
        incident_counts[(team, year)] = incident_counts.get((team, year), 0) + 1
        specs.append(DocSpec("incident", _date(rng, year), {"team": team, "reviewer": rng.choice(TEAMS)}))
    for _ in range(max(3, n_incidents // 4)):
        team = rng.choice(TEAMS)
        specs.append(DocSpec("incident_followup", _date(rng), {"team": team, "about": _date(rng)}))
    shipped: dict[tuple[str, int], int] = {}
    for _ in range(n_shipments):
        team, year = rng.choice(TEAMS), rng.choice(YEARS)
        units = rng.randint(5, 400)
        shipped[(team, year)] = shipped.get((team, year), 0) + units
        specs.append(DocSpec("shipment", _date(rng, year), {"team": team, "units": units}))
    for _ in range(max(3, n_shipments // 4)):
        specs.append(DocSpec("shipment_plan", _date(rng), {"team": rng.choice(TEAMS), "units": rng.randint(5, 400)}))
    while len(specs) < size:
        specs.append(DocSpec("memo", _date(rng), {}))
    rng.shuffle(specs)
    specs = specs[: max(size, len(specs))]
    return World(
        size=len(specs),
        seed=seed,
        doc_tokens=doc_tokens,
        specs=specs,
        profiles=profiles,
        offices=offices,
        codes=codes,
        incident_counts=incident_counts,
        shipped=shipped,
    )


# ----- rendering -----

_FILLER = (
    "{p} discussed the quarterly roadmap with the {team} team during a long meeting in {city}.",
    "The {team} team spent most of the week cleaning up old dashboards and writing notes.",
    "{p} asked whether the {city} office had enough meeting rooms for the spring planning days.",
    "Several people mentioned Project {project} in passing, but nobody had new numbers to share.",
    "A manager from the {team} team suggested moving the review to the following Tuesday.",
    "{p} sent a short reminder about expense reports and the new travel policy.",
    "The office kitchen in {city} will be closed for repairs for two days next month.",
    "{p} and {q} paired on the migration scripts and finished earlier than planned.",
    "Shipping schedules were discussed briefly; the {team} team expects a busy quarter.",
    "The incident review process was explained again for new staff on the {team} team.",
    "{p} recommended a book about distributed systems to everyone on the mailing list.",
    "Weather delays in {city} affected a few deliveries, but no reports were filed.",
    "The {team} team retrospective focused on on-call load and documentation gaps.",
    "{p} is organising a small workshop on code review habits in {city}.",
    "Budget questions should go to the finance channel rather than to individual managers.",
    "The new badge readers in the {city} office caused some confusion on Monday morning.",
    "{q} noted that the archive of old project plans is incomplete and needs an owner.",
    "Units from the last order were counted twice in a spreadsheet, which has since been fixed.",
    "{p} joined a cross-team call with the {team} team about hiring plans.",
    "Everyone is reminded that access to shared drives is reviewed every quarter.",
)
_PROSE = (
    "The notes below were collected from several threads and lightly edited.",
    "Nothing in this note changes existing plans.",
    "Questions can be raised at the next all-hands meeting.",
    "This summary was written quickly and may contain small mistakes.",
    "Further details are available from the people involved.",
    "As usual, feedback on the format of these notes is welcome.",
)


class _Renderer:
    """Renders ``DocSpec``s into documents with deterministic per-document filler."""

    def __init__(self, world: World) -> None:
        self.world = world
        rng = random.Random(f"longctx-filler-{world.seed}-{world.size}")
        people = [p.person for p in world.profiles] + list(world.offices)
        projects = list(world.codes)
        bank: list[str] = []
        for _ in range(4000):
            template = rng.choice(_FILLER)
            bank.append(
                template.format(
                    p=rng.choice(people),
                    q=rng.choice(people),
                    team=rng.choice(TEAMS),
                    city=rng.choice(CITIES),
                    project=rng.choice(projects),
                )
            )
        bank.extend(_PROSE)
        self.bank = bank
        self.avg_sentence_tokens = max(1, sum(len(s) for s in bank) // len(bank) // 4)

    def filler(self, rng: random.Random, tokens: int) -> str:
        n = max(1, tokens // self.avg_sentence_tokens)
        sentences = rng.choices(self.bank, k=n)
        paras = [" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6)]
        return "\n\n".join(paras)

    def render(self, index: int, spec: DocSpec) -> Document:
        rng = random.Random(f"longctx-doc-{self.world.seed}-{self.world.size}-{index}")
        f = spec.facts
        budget = max(20, int(self.world.doc_tokens * rng.uniform(0.6, 1.4)))
        fill = self.filler(rng, budget)
        half = fill.find("\n\n", len(fill) // 2)
        first, second = (fill[:half], fill[half + 2 :]) if half > 0 else (fill, "")
        kind = spec.kind
        if kind == "profile":
            p: Profile = f["p"]
            source, title = "hr", f"Profile: {p.person}"
            facts = (
                f"{p.person} works on the {p.team} team.\n"
                f"{p.person}'s manager is {p.manager}.\n"
                f"{p.person}'s former manager was {p.former}."
            )
        elif kind == "office":
            source, title = "facilities", f"Office assignment: {f['m']}"
            facts = (
                f"{f['m']}'s office is in {f['city']}.\n"
                f"{f['m']}'s former office was in {f['former']}.\n"
                f"{f['m']} often visits the {f['visit']} office."
            )
        elif kind == "project":
            source, title = "projects", f"Project {f['project']} access"
            facts = f"The access code for Project {f['project']} is {f['code']}."
        elif kind == "project_status":
            source, title = "projects", f"Project {f['project']} status"
            facts = (
                f"Status update for Project {f['project']}: work continues as planned.\n"
                f"The archive code for Project {f['project']} was {f['archive']}; ask the owners for the access code."
            )
        elif kind == "incident":
            source, title = "incidents", f"Incident report {f['team']} {spec.date}"
            facts = (
                f"Incident report filed by the {f['team']} team on {spec.date}.\n"
                f"The {f['reviewer']} team reviewed the report the following week."
            )
        elif kind == "incident_followup":
            source, title = "incidents", f"Follow-up on a {f['team']} incident"
            facts = f"Follow-up to the incident report filed by the {f['team']} team on {f['about']}; no new report."
        elif kind == "shipment":
            source, title = "shipping", f"Shipment {f['team']} {spec.date}"
            facts = f"Shipment log: the {f['team']} team shipped {f['units']} units on {spec.date}."
        elif kind == "shipment_plan":
            source, title = "shipping", f"Shipment plan {f['team']}"
            facts = f"Plan: the {f['team']} team expects to ship {f['units']} units next quarter; nothing shipped yet."
        else:
            source, title = "memos", f"Memo {spec.date} {index}"
            facts = ""
        text = "\n\n".join(x for x in (first, facts, second) if x)
        return Document(id=f"d{index:06d}", text=text, metadata={"source": source, "date": spec.date, "title": title})


def iter_documents(world: World) -> Iterator[Document]:
    """The world's documents in corpus order, one at a time."""
    renderer = _Renderer(world)
    for i, spec in enumerate(world.specs):
        yield renderer.render(i, spec)


def questions(world: World, per_type: int = 25) -> list[Question]:
    """Up to ``per_type`` questions of each type, interleaved by type (needle, multihop, count, sum, ...)."""
    rng = random.Random(f"longctx-questions-{world.seed}-{world.size}")
    by_type: dict[str, list[Question]] = {t: [] for t in QTYPES}
    spec_index = {id(s): i for i, s in enumerate(world.specs)}

    def ids_where(pred: Any) -> list[str]:
        return [f"d{spec_index[id(s)]:06d}" for s in world.specs if pred(s)]

    for cn in rng.sample(sorted(world.codes), min(per_type, len(world.codes))):
        by_type["needle"].append(
            Question(
                id="",
                qtype="needle",
                question=f"What is the access code for Project {cn}? Answer with the code only.",
                gold=world.codes[cn],
                evidence=ids_where(lambda s, cn=cn: s.kind == "project" and s.facts["project"] == cn),
            )
        )
    for p in rng.sample(world.profiles, min(per_type, len(world.profiles))):
        by_type["multihop"].append(
            Question(
                id="",
                qtype="multihop",
                question=f"In which city is the office of {p.person}'s manager? Answer with the city name only.",
                gold=world.offices[p.manager],
                evidence=ids_where(
                    lambda s, p=p: (
                        (s.kind == "profile" and s.facts["p"] is p)
                        or (s.kind == "office" and s.facts["m"] == p.manager)
                    )
                ),
            )
        )
    pairs = sorted(world.incident_counts)
    for team, year in rng.sample(pairs, min(per_type, len(pairs))):
        by_type["count"].append(
            Question(
                id="",
                qtype="count",
                question=f"How many incident reports did the {team} team file in {year}? Answer with a number only.",
                gold=world.incident_counts[(team, year)],
            )
        )
    pairs = sorted(world.shipped)
    for team, year in rng.sample(pairs, min(per_type, len(pairs))):
        by_type["sum"].append(
            Question(
                id="",
                qtype="sum",
                question=f"How many units did the {team} team ship in total in {year}? Answer with a number only.",
                gold=world.shipped[(team, year)],
            )
        )
    out: list[Question] = []
    for i in range(per_type):
        for t in QTYPES:
            if i < len(by_type[t]):
                q = by_type[t][i]
                q.id = f"{t}-{i:03d}"
                out.append(q)
    return out
