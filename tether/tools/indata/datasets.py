"""InData datasets: seeded synthetic domains (retail, hospital, hr) and folders of CSV/Parquet.

A ``Dataset`` is named tables (pandas frames) plus which columns are sensitive.
Generated datasets are deterministic per (domain, seed, scale) and cached as Parquet
under ``cache_dir()/indata/<domain>-s<seed>-x<scale>/`` with a ``schema.json``.

A folder dataset holds ``*.csv`` / ``*.parquet`` files (one table each, named after
the file) and optionally ``schema.json``::

    {"tables": {"patients": {"sensitive": ["name", "ssn"], "description": "..."}}}

Without ``schema.json`` a column is sensitive when its name looks like a direct
identifier (``SENSITIVE_NAME_PATTERN``: name, email, phone, ssn, address, birth date,
passport, iban, card number, ip address, notes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tether.config import cache_dir
from tether.errors import UserError

SENSITIVE_NAME_PATTERN = re.compile(
    r"(^|_)(name|first_name|last_name|full_name|email|e_mail|phone|mobile|ssn|social_security|address|street|"
    r"birth_date|date_of_birth|dob|passport|iban|card_number|credit_card|ip_address|notes)($|_)",
    re.IGNORECASE,
)
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass
class Dataset:
    """Named tables with their sensitive columns."""

    name: str
    tables: dict[str, pd.DataFrame]
    sensitive: dict[str, set[str]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def arrow(self) -> dict[str, pa.Table]:
        """The tables as Arrow (what the engine loads)."""
        return _arrow_tables(self)


def _arrow_tables(ds: Dataset) -> dict[str, pa.Table]:
    return {n: pa.Table.from_pandas(df, preserve_index=False) for n, df in ds.tables.items()}


# ----- synthetic domains -----

_FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Eva",
    "Farah",
    "Gus",
    "Hana",
    "Iker",
    "Jun",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tomás",
    "Uma",
    "Viktor",
    "Wei",
    "Xena",
    "Yusuf",
    "Zoë",
]
_LAST = [
    "Smith",
    "García",
    "Müller",
    "Okafor",
    "Tanaka",
    "Rossi",
    "Nguyen",
    "Kowalski",
    "Silva",
    "Haddad",
    "Johansson",
    "Dubois",
    "Kim",
    "Patel",
    "O'Brien",
    "Novak",
]


def _names(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(n)]


def _emails(names: list[str], rng: np.random.Generator, domain: str) -> list[str]:
    return [f"{n.split()[0].lower()}.{i}{int(rng.integers(10, 99))}@{domain}" for i, n in enumerate(names)]


def _zipf_choice(rng: np.random.Generator, items: list[Any], n: int, a: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, len(items) + 1) ** a
    return rng.choice(np.array(items, dtype=object), size=n, p=w / w.sum())


def _dates(rng: np.random.Generator, n: int, start: str, end: str, seasonal: bool = True) -> pd.Series:
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    days = (hi - lo).days
    raw = rng.integers(0, days + 1, size=n * 2)
    if seasonal:  # more activity in Nov/Dec
        doy = (lo + pd.to_timedelta(raw, unit="D")).dayofyear.to_numpy()
        keep = rng.random(raw.size) < np.where(doy > 300, 1.0, 0.7)
        raw = raw[keep]
    raw = raw[:n] if raw.size >= n else np.concatenate([raw, rng.integers(0, days + 1, size=n - raw.size)])
    return pd.Series((lo + pd.to_timedelta(np.sort(raw), unit="D")).date)


def _with_nulls(rng: np.random.Generator, values: pd.Series, rate: float) -> pd.Series:
    mask = rng.random(len(values)) < rate
    out = values.astype(object).copy()
    out[mask] = None
    return out


def _nullable_float(rng: np.random.Generator, values: np.ndarray, rate: float) -> pd.Series:
    s = pd.Series(values.astype(float))
    s[rng.random(len(s)) < rate] = np.nan
    return s


def _nullable_int(rng: np.random.Generator, values: np.ndarray, rate: float) -> pd.Series:
    s = pd.Series(values, dtype="Int64")
    s[rng.random(len(s)) < rate] = pd.NA
    return s


def gen_retail(rng: np.random.Generator, scale: float = 1.0) -> Dataset:
    """Orders, customers and products of an online shop."""
    nc, npr, no = int(400 * scale), 60, int(4000 * scale)
    names = _names(rng, nc)
    countries = ["Germany", "France", "Spain", "Italy", "Poland", "Sweden", "Portugal", "Ireland"]
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, nc + 1),
            "name": names,
            "email": _emails(names, rng, "mail.example"),
            "segment": rng.choice(["consumer", "corporate", "small business"], size=nc, p=[0.6, 0.25, 0.15]),
            "country": _zipf_choice(rng, countries, nc),
            "age": _nullable_int(rng, np.clip(rng.normal(41, 13, nc).round(), 18, 90).astype(int), 0.05),
            "signup_date": _dates(rng, nc, "2019-01-01", "2023-12-31", seasonal=False),
        }
    )
    cats = ["electronics", "home", "garden", "toys", "books", "sports"]
    brands = ["Acme", "Borealis", "Cobalt", "Dune", "Ember", "Fjord", "Gale", "Helix", "Iris", "Juniper"]
    category = rng.choice(cats, size=npr, p=[0.2, 0.2, 0.15, 0.15, 0.15, 0.15])
    base = {"electronics": 250, "home": 60, "garden": 45, "toys": 25, "books": 15, "sports": 70}
    products = pd.DataFrame(
        {
            "product_id": np.arange(1, npr + 1),
            "product_name": [f"{c[:3].upper()}-{i:03d}" for i, c in enumerate(category, 1)],
            "category": category,
            "brand": _zipf_choice(rng, brands, npr, 0.8),
            "list_price": [round(base[c] * float(rng.lognormal(0, 0.5)), 2) for c in category],
        }
    )
    cust = rng.zipf(1.6, size=no) % nc + 1
    prod = rng.integers(1, npr + 1, size=no)
    discount = rng.choice([0.0, 0.05, 0.1, 0.2], size=no, p=[0.55, 0.2, 0.15, 0.1])
    lp = products.set_index("product_id").loc[prod, "list_price"].to_numpy()
    orders = pd.DataFrame(
        {
            "order_id": np.arange(100001, 100001 + no),
            "customer_id": cust,
            "product_id": prod,
            "order_date": _dates(rng, no, "2021-01-01", "2024-12-31"),
            "quantity": np.minimum(rng.geometric(0.45, size=no), 12),
            "unit_price": np.round(lp * (1 - discount), 2),
            "discount": discount,
            "status": rng.choice(["completed", "returned", "cancelled", "pending"], size=no, p=[0.8, 0.08, 0.07, 0.05]),
            "channel": rng.choice(["web", "app", "store"], size=no, p=[0.5, 0.3, 0.2]),
            "shipping_cost": _nullable_float(rng, np.round(rng.gamma(2.0, 3.0, size=no), 2), 0.1),
        }
    )
    return Dataset(
        "retail",
        {"customers": customers, "products": products, "orders": orders},
        {"customers": {"name", "email"}},
        {
            "customers": "one row per customer",
            "products": "one row per product",
            "orders": "one row per order line; customer_id -> customers, product_id -> products",
        },
    )


def gen_hospital(rng: np.random.Generator, scale: float = 1.0) -> Dataset:
    """Patients, departments and visits of a hospital."""
    npat, nv = int(500 * scale), int(4000 * scale)
    names = _names(rng, npat)
    cities = ["Lyon", "Porto", "Graz", "Turku", "Gent", "Brno", "Cork", "Bilbao"]
    patients = pd.DataFrame(
        {
            "patient_id": np.arange(1, npat + 1),
            "name": names,
            "ssn": [
                f"{int(rng.integers(100, 999))}-{int(rng.integers(10, 99))}-{int(rng.integers(1000, 9999))}"
                for _ in range(npat)
            ],
            "phone": [f"+33 6 {int(rng.integers(10**7, 10**8))}" for _ in range(npat)],
            "sex": rng.choice(["F", "M"], size=npat),
            "birth_year": rng.integers(1930, 2020, size=npat),
            "blood_type": _with_nulls(
                rng,
                pd.Series(
                    rng.choice(["O+", "A+", "B+", "AB+", "O-", "A-"], size=npat, p=[0.38, 0.34, 0.09, 0.04, 0.08, 0.07])
                ),
                0.15,
            ),
            "city": _zipf_choice(rng, cities, npat),
        }
    )
    depts = [
        "cardiology",
        "oncology",
        "orthopedics",
        "neurology",
        "pediatrics",
        "emergency",
        "dermatology",
        "radiology",
    ]
    departments = pd.DataFrame(
        {
            "dept_id": np.arange(1, len(depts) + 1),
            "dept_name": depts,
            "building": ["A", "A", "B", "B", "C", "C", "D", "D"],
            "beds": rng.integers(10, 80, size=len(depts)),
        }
    )
    codes = [f"{c}{n:02d}" for c, n in zip("IJKMNRSCEG", rng.integers(0, 99, size=10), strict=True)]
    dept = _zipf_choice(rng, list(range(1, len(depts) + 1)), nv, 0.7).astype(int)
    los = np.minimum(rng.poisson(np.where(dept == 6, 0.5, 3.0)), 40)
    visits = pd.DataFrame(
        {
            "visit_id": np.arange(1, nv + 1),
            "patient_id": rng.integers(1, npat + 1, size=nv),
            "dept_id": dept,
            "visit_date": _dates(rng, nv, "2020-01-01", "2024-06-30"),
            "diagnosis_code": _zipf_choice(rng, codes, nv, 0.9),
            "length_of_stay": los,
            "cost": np.round(rng.lognormal(7.0, 0.6, size=nv) * (1 + los / 3), 2),
            "emergency": rng.random(nv) < np.where(dept == 6, 0.9, 0.1),
            "notes": [f"patient reports {rng.choice(['pain', 'fever', 'fatigue', 'dizziness'])}" for _ in range(nv)],
        }
    )
    return Dataset(
        "hospital",
        {"patients": patients, "departments": departments, "visits": visits},
        {"patients": {"name", "ssn", "phone"}, "visits": {"notes"}},
        {
            "patients": "one row per patient",
            "departments": "one row per hospital department",
            "visits": "one row per visit; patient_id -> patients, dept_id -> departments",
        },
    )


def gen_hr(rng: np.random.Generator, scale: float = 1.0) -> Dataset:
    """Departments, employees and leave requests of a company."""
    ne, nl = int(700 * scale), int(2500 * scale)
    dnames = [
        "engineering",
        "sales",
        "marketing",
        "finance",
        "support",
        "legal",
        "operations",
        "research",
        "design",
        "people",
    ]
    departments = pd.DataFrame(
        {
            "dept_id": np.arange(1, len(dnames) + 1),
            "dept_name": dnames,
            "location": rng.choice(["Berlin", "Lisbon", "Warsaw", "Remote"], size=len(dnames)),
            "budget": np.round(rng.lognormal(14, 0.5, size=len(dnames)), -3),
        }
    )
    names = _names(rng, ne)
    level = rng.choice([1, 2, 3, 4, 5], size=ne, p=[0.3, 0.3, 0.2, 0.13, 0.07])
    dept = _zipf_choice(rng, list(range(1, len(dnames) + 1)), ne, 0.9).astype(int)
    titles = {1: "associate", 2: "specialist", 3: "senior", 4: "lead", 5: "director"}
    employees = pd.DataFrame(
        {
            "emp_id": np.arange(1, ne + 1),
            "name": names,
            "email": _emails(names, rng, "corp.example"),
            "home_address": [
                f"{int(rng.integers(1, 200))} {rng.choice(['Oak', 'Elm', 'Birch'])} St" for _ in range(ne)
            ],
            "dept_id": dept,
            "job_level": level,
            "title": [titles[int(v)] for v in level],
            "gender": rng.choice(["female", "male", "nonbinary"], size=ne, p=[0.47, 0.49, 0.04]),
            "hire_date": _dates(rng, ne, "2010-01-01", "2024-06-30", seasonal=False),
            "salary": np.round(rng.lognormal(np.log(40000 + 18000 * level), 0.15), -2),
            "remote": rng.random(ne) < 0.3,
            "performance_score": _nullable_float(rng, np.round(rng.normal(3.4, 0.6, ne).clip(1, 5), 1), 0.08),
        }
    )
    leave = pd.DataFrame(
        {
            "request_id": np.arange(1, nl + 1),
            "emp_id": rng.integers(1, ne + 1, size=nl),
            "start_date": _dates(rng, nl, "2021-01-01", "2024-12-31"),
            "days": np.minimum(rng.geometric(0.25, size=nl), 30),
            "leave_type": rng.choice(["vacation", "sick", "parental", "unpaid"], size=nl, p=[0.6, 0.28, 0.05, 0.07]),
            "approved": rng.random(nl) < 0.88,
        }
    )
    return Dataset(
        "hr",
        {"departments": departments, "employees": employees, "leave_requests": leave},
        {"employees": {"name", "email", "home_address"}},
        {
            "departments": "one row per department",
            "employees": "one row per employee; dept_id -> departments",
            "leave_requests": "one row per leave request; emp_id -> employees",
        },
    )


DOMAINS: dict[str, Callable[[np.random.Generator, float], Dataset]] = {
    "retail": gen_retail,
    "hospital": gen_hospital,
    "hr": gen_hr,
}


def generate(domain: str, seed: int = 0, scale: float = 1.0) -> Dataset:
    """Generate the synthetic dataset ``domain`` deterministically for ``seed`` (no cache)."""
    if domain not in DOMAINS:
        raise UserError(f"Unknown InData dataset {domain!r}; built-in datasets: {', '.join(DOMAINS)}.")
    ds = DOMAINS[domain](np.random.default_rng([seed, sorted(DOMAINS).index(domain)]), scale)
    ds.name = f"{domain}:{seed}" if scale == 1.0 else f"{domain}:{seed}:{scale:g}"
    return ds


# ----- files -----


def save(ds: Dataset, folder: Path) -> None:
    """Write ``ds`` as Parquet files plus ``schema.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in ds.arrow().items():
        pq.write_table(table, folder / f"{name}.parquet")
    schema = {
        "name": ds.name,
        "tables": {
            n: {"sensitive": sorted(ds.sensitive.get(n, set())), "description": ds.descriptions.get(n, "")}
            for n in ds.tables
        },
    }
    (folder / "schema.json").write_text(json.dumps(schema, indent=2), encoding="utf-8")


def load_folder(folder: Path) -> Dataset:
    """Load a folder of CSV/Parquet files (see module docs); ``UserError`` on a bad folder."""
    if not folder.is_dir():
        raise UserError(f"InData dataset folder {str(folder)!r} does not exist.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".parquet"))
    if not files:
        raise UserError(f"InData dataset folder {str(folder)!r} has no .csv or .parquet files.")
    schema: dict[str, dict[str, object]] = {}
    sp = folder / "schema.json"
    if sp.is_file():
        try:
            raw = json.loads(sp.read_text(encoding="utf-8"))
            schema = dict(raw.get("tables", {}))
        except (json.JSONDecodeError, AttributeError) as exc:
            raise UserError(f"{sp} is not a valid schema file: {exc}.") from None
    tables: dict[str, pd.DataFrame] = {}
    sensitive: dict[str, set[str]] = {}
    descriptions: dict[str, str] = {}
    for p in files:
        name = p.stem
        if not _TABLE_NAME.match(name) or re.match(r"^t[0-9]+$", name) or name in tables:
            raise UserError(f"File {p.name!r} does not give a usable table name (letters, digits, _; not t1, t2...).")
        try:
            df = pq.read_table(p).to_pandas() if p.suffix.lower() == ".parquet" else pd.read_csv(p)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the person's file
            raise UserError(f"Could not read {p.name}: {exc}.") from None
        for c in df.columns:
            df[c] = _typed_dates(df[c])
        tables[name] = df
        meta = schema.get(name)
        if meta is not None:
            sens = meta.get("sensitive", []) if isinstance(meta, dict) else []
            if not isinstance(sens, list) or not all(isinstance(c, str) for c in sens):
                raise UserError(f"schema.json: 'sensitive' of {name!r} must be a list of column names.")
            unknown = set(sens) - set(map(str, df.columns))
            if unknown:
                raise UserError(f"schema.json marks unknown columns of {name!r} as sensitive: {sorted(unknown)}.")
            sensitive[name] = set(sens)
            descriptions[name] = str(meta.get("description", "")) if isinstance(meta, dict) else ""
        else:
            sensitive[name] = {str(c) for c in df.columns if SENSITIVE_NAME_PATTERN.search(str(c))}
    return Dataset(folder.name, tables, sensitive, descriptions)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def _typed_dates(col: pd.Series) -> pd.Series:
    """ISO date / timestamp text (as CSV gives it) becomes dates / timestamps; midnight timestamps become dates."""
    if pd.api.types.is_datetime64_any_dtype(col):
        present = col.dropna()
        return col.dt.date if (present.dt.normalize() == present).all() else col
    if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
        return col
    present = col.dropna()
    if present.empty or not all(isinstance(v, str) for v in present):
        return col
    try:
        if all(_ISO_DATE.match(v) for v in present):
            return pd.to_datetime(col, format="%Y-%m-%d").dt.date.astype(object).where(col.notna(), None)
        if all(_ISO_TIME.match(v) for v in present):
            return pd.to_datetime(col, format="ISO8601")
    except (ValueError, TypeError):
        return col
    return col


def _parse_spec(spec: str) -> tuple[str, int, float]:
    parts = spec.split(":")
    try:
        seed = int(parts[1]) if len(parts) > 1 else 0
        scale = float(parts[2]) if len(parts) > 2 else 1.0
    except ValueError:
        raise UserError(f"Bad dataset {spec!r}: write NAME, NAME:SEED or NAME:SEED:SCALE (e.g. retail:3).") from None
    if len(parts) > 3 or scale <= 0:
        raise UserError(f"Bad dataset {spec!r}: write NAME, NAME:SEED or NAME:SEED:SCALE (e.g. retail:3).")
    return parts[0], seed, scale


def cached_folder(domain: str, seed: int, scale: float = 1.0) -> Path:
    """Generate (once) and return the Parquet cache folder of a built-in dataset."""
    folder = cache_dir() / "indata" / f"{domain}-s{seed}-x{scale:g}"
    if not (folder / "schema.json").is_file():
        ds = generate(domain, seed, scale)
        tmp = folder.with_name(folder.name + f".tmp{np.random.default_rng().integers(1 << 30)}")
        save(ds, tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process won the race
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve(spec: str) -> Dataset:
    """A dataset from ``NAME[:SEED[:SCALE]]`` (built-in, cached as Parquet) or a folder path."""
    return _resolve_cached(spec)


@lru_cache(maxsize=16)
def _resolve_cached(spec: str) -> Dataset:
    name = spec.split(":")[0]
    if name in DOMAINS:
        domain, seed, scale = _parse_spec(spec)
        ds = load_folder(cached_folder(domain, seed, scale))
        ds.name = f"{domain}:{seed}" if scale == 1.0 else f"{domain}:{seed}:{scale:g}"
        return ds
    path = Path(spec).expanduser()
    if path.exists():
        return load_folder(path)
    raise UserError(f"Unknown InData dataset {spec!r}: use one of {', '.join(DOMAINS)} (optionally :SEED) or a folder.")


@lru_cache(maxsize=16)
def arrow_tables(spec: str) -> dict[str, pa.Table]:
    """The Arrow tables of a dataset spec (cached per process)."""
    return resolve(spec).arrow()
