"""Run search on SQLite and PostgreSQL, checked against a reference evaluator in Python.

One module-scoped database per backend holds a generated project (params of
every type, NaN and missing metrics, tags, nullable attributes, tied start
times) and a second project that must never leak into results. Every query is
run in three plans: as chosen, forced to walk the order index in tiny windows,
and forced to read candidate runs first; each must equal the reference.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from registrum.errors import FilterSyntaxError, InvalidArgument
from registrum.store import schema as t
from registrum.store.db import make_engine, migrate
from registrum.store.search import query as search
from registrum.store.search.parser import (
    And,
    Comparison,
    Node,
    Not,
    Or,
    like_parts,
    parse_filter,
    parse_order_by,
)
from registrum.store.search.query import search_run_ids

POSTGRES_ADMIN_URL = os.environ.get(
    "REGISTRUM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
INJECTION = "1'; DROP TABLE runs; --"
MISSING = object()


@dataclass
class Run:
    id: str
    attrs: dict[str, Any]
    params: dict[str, tuple[float | None, str | None]] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)  # None: NaN
    tags: dict[str, str] = field(default_factory=dict)


def typed(value: Any) -> tuple[float | None, str | None]:
    """(value_num, value_str) as the service stores a param value."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return float(value), "true" if value else "false"
    if isinstance(value, (int, float)):
        return float(value), repr(value)
    return None, str(value)[:250]


def generate(seed: int = 11) -> list[Run]:
    rng = random.Random(seed)
    runs: list[Run] = []
    for i in range(90):
        rid = f"{rng.getrandbits(40):010x}"
        status = rng.choice(["running", "finished", "finished", "failed", "killed"])
        start = 1000.0 + rng.randrange(50) * 10  # some start times tie: id breaks them
        run = Run(
            rid,
            {
                "id": rid,
                "name": None
                if rng.random() < 0.1
                else f"{rng.choice(['alpha', 'beta', 'gamma'])}-{i:02d}",
                "status": status,
                "job_type": rng.choice(["train", "eval", None]),
                "user": rng.choice(["ann", "bob", "cyd"]),
                "host": rng.choice(["h1", "h2", None]),
                "start_time": start,
                "end_time": None if status == "running" else start + rng.randrange(1, 500),
                "parent_id": runs[rng.randrange(len(runs))].id
                if runs and rng.random() < 0.2
                else None,
            },
        )
        choices: dict[str, list[Any]] = {
            "lr": [0.1, 0.01, 0.001, 0.001, "auto", MISSING],
            "bs": [16, 32, 64, MISSING],
            "opt": ["adam", "sgd", "adamw", MISSING],
            "amp": [True, False, MISSING],
            "optimizer.lr": [1e-3, 5e-4, 2e-3],
            "model/arch": ["resnet", "vit", "ResNet", "vit_b_16"],
            "weird key": ["x", "y", MISSING],
            "empty": [None, MISSING, MISSING],
            "mix": [1, 1.0, 2, "1", MISSING],  # 1 and 1.0: equal numbers, unequal text
        }
        for key, options in choices.items():
            value = rng.choice(options)
            if value is not MISSING:
                run.params[key] = typed(value)
        for key in ("loss", "acc", "train/loss"):
            roll = rng.random()
            if key == "acc":
                value = rng.choice([0.5, 0.75, 0.9, 1.0, 1.0])
            else:
                value = round(rng.random(), 3)
            if key == "train/loss" or roll < 0.8:
                run.metrics[key] = value
            elif roll < 0.9:
                run.metrics[key] = None  # NaN
        if rng.random() < 0.8:
            run.tags["team"] = rng.choice(["vision", "nlp", "speech"])
        if rng.random() < 0.3:
            run.tags["note"] = rng.choice(["50% done", "50_done", "half done", "Done"])
        runs.append(run)
    # Hand-made runs for specific cases.
    runs[0].params["x"] = typed(INJECTION)
    runs[1].params["x"] = typed("1")
    runs[2].params["x"] = typed(1)
    runs[3].params["long"] = typed("z" * 300)
    return runs


RUNS = generate()
OTHER_RUN = Run(
    "otherproject",
    {
        "id": "otherproject",
        "name": "alpha-00",
        "status": "finished",
        "job_type": "train",
        "user": "ann",
        "host": "h1",
        "start_time": 5000.0,
        "end_time": 5001.0,
        "parent_id": None,
    },
    params={"lr": typed(0.001), "x": typed(INJECTION)},
    metrics={"loss": 0.0, "acc": 1.0, "train/loss": 0.0},
    tags={"team": "vision"},
)


# The reference evaluator


def like(pattern: str, value: str) -> bool:
    regex = "".join(
        (".*" if ch == "%" else ".") if wild else re.escape(ch) for ch, wild in like_parts(pattern)
    )
    return re.fullmatch(regex, value, re.DOTALL) is not None


def compare(op: str, value: Any, operands: list[Any]) -> bool:
    if value is None:
        return False
    first = operands[0]
    return {
        "=": lambda: value == first,
        "!=": lambda: value != first,
        "<": lambda: value < first,
        "<=": lambda: value <= first,
        ">": lambda: value > first,
        ">=": lambda: value >= first,
        "in": lambda: value in operands,
        "not in": lambda: value not in operands,
        "like": lambda: like(first, value),
        "not like": lambda: not like(first, value),
    }[op]()


def matches(node: Node | None, run: Run) -> bool:
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(i, run) for i in node.items)
    if isinstance(node, Or):
        return any(matches(i, run) for i in node.items)
    if isinstance(node, Not):
        return not matches(node.item, run)
    assert isinstance(node, Comparison)
    kind, key, op = node.field.kind, node.field.key, node.op
    texts = [v.text for v in node.values]
    numbers = [v.number for v in node.values]
    if kind == "attribute":
        return compare(op, attribute(run, key), numbers if node.field.numeric else texts)
    if kind == "tag":
        return compare(op, run.tags.get(key), texts)
    if kind == "metric":
        return compare(op, run.metrics.get(key), numbers)
    if key not in run.params:
        return False
    num, text = run.params[key]
    nums = [v.number for v in node.values if v.kind != "string"]
    strs = [v.text[:250] for v in node.values if v.kind == "string"]
    if not strs:
        return compare(op, num, nums)
    if not nums:
        return compare(op, text, strs)
    hit = (num is not None and num in nums) or (text is not None and text in strs)
    return hit if op == "in" else (num is not None or text is not None) and not hit


def attribute(run: Run, key: str) -> Any:
    """A run attribute as the search sees it: duration is the end time minus the start."""
    if key == "duration":
        end = run.attrs["end_time"]
        return None if end is None else end - run.attrs["start_time"]
    return run.attrs[key]


def sort_classes(kind: str, key: str, run: Run) -> tuple[int, Any]:
    """(class, value): lower classes first; the last class lacks the value."""
    if kind == "attribute":
        value = attribute(run, key)
        return (0, value) if value is not None else (1, None)
    if kind == "tag":
        return (0, run.tags[key]) if key in run.tags else (1, None)
    if kind == "metric":
        value = run.metrics.get(key)
        return (0, value) if value is not None else (1, None)
    num, text = run.params.get(key, (None, None))
    if num is not None:
        return (0, num)
    return (1, text) if text is not None else (2, None)


def expected(filter: str | None, order_by: Any, runs: list[Run] = RUNS) -> list[str]:
    tree = parse_filter(filter)
    rows = [r for r in runs if matches(tree, r)]
    keys = [(k.field.kind, k.field.key, k.descending) for k in parse_order_by(order_by)]
    keys += [("attribute", "start_time", True), ("attribute", "id", False)]
    seen: set[tuple[str, str]] = set()
    unique = []
    for kind, key, desc in keys:
        if (kind, key) not in seen:
            seen.add((kind, key))
            unique.append((kind, key, desc))
    for kind, key, desc in reversed(unique):  # stable sorts, least significant first
        classes: dict[int, list[Run]] = {}
        for r in rows:
            classes.setdefault(sort_classes(kind, key, r)[0], []).append(r)
        rows = []
        last = 1 if kind != "param" else 2
        for cls in sorted(classes):
            group = classes[cls]
            if cls != last:
                group = sorted(group, key=lambda r: sort_classes(kind, key, r)[1], reverse=desc)
            rows += group
    return [r.id for r in rows]


# The databases


def insert(conn: sa.Connection, project_id: int, runs: list[Run]) -> None:
    conn.execute(
        t.projects.insert(), [{"id": project_id, "name": f"p{project_id}", "created_at": 0.0}]
    )
    names = sorted({k for r in runs for k in [*r.params, *r.metrics]})
    conn.execute(t.keys.insert(), [{"project_id": project_id, "name": n} for n in names])
    key_id = dict(
        conn.execute(
            sa.select(t.keys.c.name, t.keys.c.id).where(t.keys.c.project_id == project_id)
        ).all()
    )
    conn.execute(
        t.runs.insert(),
        [{**r.attrs, "project_id": project_id, "created_at": 0.0} for r in runs],
    )
    params = [
        {
            "run_id": r.id,
            "key_id": key_id[k],
            "value_type": "null" if text is None else "str" if num is None else "float",
            "value_json": json.dumps(text),
            "value_num": num,
            "value_str": text,
            "updated_at": 0.0,
        }
        for r in runs
        for k, (num, text) in r.params.items()
    ]
    conn.execute(t.params.insert(), params)
    summaries = [
        {
            "run_id": r.id,
            "key_id": key_id[k],
            "last_value": value,
            "last_step": 1,
            "last_time": 0.0,
            "min_value": value,
            "max_value": value,
            "points": 1,
        }
        for r in runs
        for k, value in r.metrics.items()
    ]
    conn.execute(t.metric_summaries.insert(), summaries)
    tags = [{"run_id": r.id, "key": k, "value": v} for r in runs for k, v in r.tags.items()]
    conn.execute(t.run_tags.insert(), tags)


@contextmanager
def sqlite_url(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder}/search.db"


@contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh database for this module, dropped afterwards. Collation C, so text
    sorts by code point as in SQLite and in the reference."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"registrum_test_search_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    f'CREATE DATABASE "{name}" TEMPLATE template0 '
                    "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
                )
            )
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {exc}")
    try:
        url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        location = sqlite_url(tmp_path_factory.mktemp("search"))
    else:
        location = postgres_url()
    with location as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            with engine.begin() as conn:
                insert(conn, 1, RUNS)
                insert(conn, 2, [OTHER_RUN])
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(params=["auto", "walk", "candidates"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which query shape answers: as chosen, or forced either way."""
    force(monkeypatch, request.param)
    return str(request.param)


def force(monkeypatch: pytest.MonkeyPatch, plan: str) -> None:
    monkeypatch.undo()
    if plan == "walk":  # never read candidates first; windows of 3 index entries
        monkeypatch.setattr(search, "_driver_threshold", lambda limit: -1)
        monkeypatch.setattr(search, "_WINDOW", 3)
    elif plan == "candidates":  # any indexable term drives
        monkeypatch.setattr(search, "_driver_threshold", lambda limit: 10**6)


def search_all(
    engine: sa.Engine,
    filter: str | None = None,
    order_by: Any = None,
    *,
    limit: int = 1000,
    project_id: int = 1,
) -> list[str]:
    """Every page's ids, in order; each full page but the last, and no cursor after it."""
    ids: list[str] = []
    cursor = None
    with engine.connect() as conn:
        while True:
            page, cursor = search_run_ids(
                conn, project_id, filter=filter, order_by=order_by, limit=limit, cursor=cursor
            )
            ids += page
            if cursor is None:
                break
            assert len(page) == limit
        conn.rollback()
    return ids


def parent_with_children() -> str:
    return next(r.attrs["parent_id"] for r in RUNS if r.attrs["parent_id"] is not None)


FILTERS = [
    None,
    # metrics: last values; NaN and missing match nothing
    "metrics.loss < 0.5",
    "metrics.loss <= 0.5",
    "metrics.loss > 0.5",
    "metrics.loss >= 0.5",
    "metrics.acc = 1",
    "metrics.acc = true",
    "metrics.acc != 1",
    "not metrics.acc = 1",
    "metrics.acc in (0.5, 0.9)",
    "metrics.acc not in (0.5, 0.9)",
    "not metrics.loss < 100",
    "metrics.train/loss > 0.2",
    "metrics.`train/loss` <= 0.2",
    # params: numbers against value_num, strings against value_str
    "params.lr = 0.001",
    "params.lr = 1e-3",
    "params.lr = '0.001'",
    "params.lr != 0.001",
    "params.lr = 'auto'",
    "params.lr != 'auto'",
    "params.lr < 0.05",
    "params.lr >= 0.01",
    "params.bs > 16",
    "params.bs in (16, 64)",
    "params.bs not in (16, 64)",
    "params.lr in (0.1, 'auto')",
    "params.lr not in (0.1, 'auto')",
    "params.opt = 'adam'",
    "params.opt < 'b'",
    "params.opt like 'adam%'",
    "params.opt not like 'adam%'",
    "params.amp = true",
    "params.amp = false",
    "params.amp = 1",
    "params.amp = 'true'",
    "params.optimizer.lr > 0.0009",
    "params.model/arch like 'res%'",
    "params.model/arch like 'Res%'",
    "params.model/arch like 'v_t'",
    "params.model/arch like '%\\_b\\_%'",
    "params.`weird key` = 'x'",
    "params.empty = 'x'",
    "not params.empty = 'x'",
    "params.x = 1",
    "params.x = '1'",
    "params.long = '" + "z" * 300 + "'",
    "params.long like 'zz%'",
    # tags compare as text
    "tags.team = 'vision'",
    "tags.team != 'vision'",
    "tags.team in ('vision', 'nlp')",
    "tags.team not in ('vision')",
    "tags.note like '50\\%%'",
    "tags.note like '50_%'",
    "tags.note like '%done'",
    "tags.note not like '%done'",
    "tags.note > 'a'",
    # attributes
    "status = 'finished'",
    "attributes.status != 'finished'",
    "status in ('failed', 'killed')",
    "name like 'alpha%'",
    "name not like 'alpha%'",
    "name != 'alpha-01'",
    "job_type = 'train'",
    "job_type != 'train'",
    "user = 'ann'",
    "not host = 'h1'",
    "start_time > 1200",
    "start_time <= 1100",
    "start_time > '1970-01-01T00:20:00'",
    "end_time > 1300",
    "duration > 250",
    "duration <= 100 or status = 'running'",
    f"id = '{RUNS[5].id}'",
    f"id in ('{RUNS[5].id}', '{RUNS[6].id}', 'nosuchrun')",
    f"parent_id = '{parent_with_children()}'",
    f"parent_id != '{parent_with_children()}'",
    # keys the project does not have
    "metrics.nope < 1",
    "not metrics.nope < 1",
    "params.nope = 1",
    "params.nope != 1",
    "tags.nope = 'x'",
    "not tags.nope = 'x'",
    # and, or, not, parentheses
    "metrics.loss < 0.5 and params.lr = 0.001",
    "metrics.loss < 0.5 or params.lr = 0.001",
    "params.opt = 'adam' or params.opt = 'sgd' and metrics.acc = 1",
    "(params.opt = 'adam' or params.opt = 'sgd') and metrics.acc = 1",
    "not (params.opt = 'adam' or tags.team = 'nlp') and status != 'running'",
    "not params.opt = 'adam' and not metrics.loss < 0.3",
    "params.bs >= 32 and (tags.team = 'vision' or name like 'beta%') and not metrics.acc in (0.5)",
    "params.bs = 16 and metrics.nope < 1 or tags.team = 'speech'",
]


@pytest.mark.parametrize("filter", FILTERS)
def test_filter_matches_reference(engine: sa.Engine, plan: str, filter: str | None) -> None:
    assert search_all(engine, filter) == expected(filter, None)


ORDERS: list[Any] = [
    None,
    "-metrics.loss",
    "metrics.loss",
    "-metrics.acc",
    "metrics.acc asc",
    "metrics.`train/loss`",
    "params.lr",
    "-params.lr",
    "params.opt",
    "-params.bs",
    "params.amp desc",
    "params.x",
    "tags.team",
    "-tags.note",
    "name",
    "-name",
    "end_time",
    "-end_time",
    "duration",
    "-duration",
    "duration, -metrics.acc",
    "status",
    "start_time",
    "-id",
    "attributes.user desc",
    ["params.opt", "-metrics.acc"],
    "-params.lr, metrics.loss",
    "metrics.nope",
    "-params.nope, name",
    "params.mix",
    ["status", "-params.mix"],
    "user, tags.team desc",
    "-metrics.acc, metrics.nope, params.nope, tags.nope",
    "-params.lr, tags.team",
    "params.opt, -params.bs, metrics.loss",
    "metrics.acc, name",
    "metrics.acc, end_time desc",
    "-params.mix, params.opt",
    "tags.team, -metrics.acc",
]
ORDER_FILTERS = [None, "metrics.loss < 0.7", "params.opt != 'sgd' or tags.team = 'nlp'"]


@pytest.mark.parametrize("order_by", ORDERS, ids=str)
@pytest.mark.parametrize("filter", ORDER_FILTERS)
def test_order_and_pages_match_reference(
    engine: sa.Engine, plan: str, order_by: Any, filter: str | None
) -> None:
    assert search_all(engine, filter, order_by, limit=7) == expected(filter, order_by)


def test_a_cursor_serves_whichever_plan_reads_the_next_page(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_by, ids, cursor = "-params.lr", [], None
    plans = ["walk", "candidates", "auto"]
    with engine.connect() as conn:
        for page_number in range(100):
            force(monkeypatch, plans[page_number % 3])
            page, cursor = search_run_ids(
                conn, 1, filter="params.bs > 0", order_by=order_by, limit=4, cursor=cursor
            )
            ids += page
            if cursor is None:
                break
    assert ids == expected("params.bs > 0", order_by)


def test_nan_and_missing_metrics_never_compare(engine: sa.Engine) -> None:
    nan = {r.id for r in RUNS if "loss" in r.metrics and r.metrics["loss"] is None}
    missing = {r.id for r in RUNS if "loss" not in r.metrics}
    assert nan and missing
    for op in ("<", "<=", ">", ">=", "=", "!="):
        found = set(search_all(engine, f"metrics.loss {op} 0.5"))
        assert not found & (nan | missing)
    assert nan | missing <= set(search_all(engine, "not metrics.loss < 100"))
    assert nan | missing <= set(search_all(engine, "not metrics.loss != 0.5"))


@pytest.mark.parametrize("order_by", ["metrics.loss", "-metrics.loss"])
def test_runs_missing_the_order_value_come_last(engine: sa.Engine, order_by: str) -> None:
    ids = search_all(engine, order_by=order_by, limit=9)
    lacking = {r.id for r in RUNS if r.metrics.get("loss") is None}
    tail = ids[len(ids) - len(lacking) :]
    assert set(tail) == lacking
    values = [next(r.metrics["loss"] for r in RUNS if r.id == i) for i in ids[: -len(lacking)]]
    assert values == sorted(values, reverse=order_by.startswith("-"))


def test_injection_is_a_plain_value(engine: sa.Engine) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        found = search_all(engine, f'params.x = "{INJECTION}"')
        found_tag = search_all(engine, f'tags.team = "{INJECTION}" or name = "{INJECTION}"')
        escaped = INJECTION.replace("'", "\\'")
        found_escaped = search_all(engine, f"params.x = '{escaped}' or params.x like '%DROP%'")
        # Unescaped inside single quotes, the text after the quote is not a filter.
        with pytest.raises(FilterSyntaxError) as info:
            search_all(engine, f"params.x = '{INJECTION}'")
        assert info.value.position == len("params.x = '1'")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert found == [RUNS[0].id]
    assert found_tag == []
    assert found_escaped == [RUNS[0].id]
    assert statements and not any("DROP" in s for s in statements)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar() == 91


def test_other_projects_never_show(engine: sa.Engine) -> None:
    assert OTHER_RUN.id not in search_all(engine, "params.lr = 0.001 or params.lr != 0.001")
    assert OTHER_RUN.id not in search_all(engine, order_by="-metrics.acc")
    assert search_all(engine, project_id=2) == [OTHER_RUN.id]
    assert search_all(engine, "params.lr = 0.001", project_id=2) == [OTHER_RUN.id]
    assert search_all(engine, project_id=3) == []


def first_cursor(engine: sa.Engine, **query: Any) -> str:
    with engine.connect() as conn:
        _, cursor = search_run_ids(conn, 1, limit=5, **query)
    assert cursor is not None
    return cursor


@pytest.mark.parametrize(
    "other",
    [
        {"filter": "metrics.loss < 0.9", "order_by": "-metrics.acc"},
        {"filter": "metrics.loss < 0.5", "order_by": "metrics.acc"},
        {"filter": "metrics.loss < 0.5"},
        {"order_by": "-metrics.acc"},
        {"filter": "metrics.loss < 0.5", "order_by": "-metrics.acc", "project_id": 2},
    ],
)
def test_a_cursor_only_fits_its_own_search(engine: sa.Engine, other: dict[str, Any]) -> None:
    cursor = first_cursor(engine, filter="metrics.loss < 0.5", order_by="-metrics.acc")
    query = dict(other)
    project_id = query.pop("project_id", 1)
    with engine.connect() as conn, pytest.raises(InvalidArgument, match="different search"):
        search_run_ids(conn, project_id, cursor=cursor, **query)


def test_the_same_search_may_change_its_page_size(engine: sa.Engine) -> None:
    query: dict[str, Any] = {"filter": "metrics.loss < 0.5", "order_by": "-metrics.acc"}
    cursor = first_cursor(engine, **query)
    with engine.connect() as conn:
        rest, _ = search_run_ids(conn, 1, limit=1000, cursor=cursor, **query)
    assert rest == expected(query["filter"], query["order_by"])[5:]


def tamper(cursor: str, **changes: Any) -> str:
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data.update(changes)
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def test_bad_cursors_are_invalid_arguments(engine: sa.Engine) -> None:
    query: dict[str, Any] = {"filter": "metrics.loss < 0.5", "order_by": "-metrics.acc"}
    cursor = first_cursor(engine, **query)
    bad = [
        "not-a-cursor",
        "!!!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        tamper(cursor, v=99),
        tamper(cursor, s=7),
        tamper(cursor, s=True),
        tamper(cursor, k=["a", 1000.0, "x"]),
        tamper(cursor, k=[0.5, "1000", "x"]),
        tamper(cursor, k=[0.5, None, "x"]),
        tamper(cursor, k=[0.5, 1000.0, 5]),
        tamper(cursor, k=[0.5, 1000.0]),
        tamper(cursor, k="0.5"),
        "x" * 10_000,
    ]
    with engine.connect() as conn:
        for value in bad:
            with pytest.raises(InvalidArgument, match="cursor"):
                search_run_ids(conn, 1, cursor=value, **query)


@pytest.mark.parametrize("limit", [0, -1, 1001, True, 2.5, "10", None])
def test_limit_must_be_1_to_1000(engine: sa.Engine, limit: Any) -> None:
    with engine.connect() as conn, pytest.raises(InvalidArgument, match="limit"):
        search_run_ids(conn, 1, limit=limit)


def test_limit_bounds_are_accepted(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        one, cursor = search_run_ids(conn, 1, limit=1)
        everything, last = search_run_ids(conn, 1, limit=1000)
    assert one == expected(None, None)[:1] and cursor is not None
    assert everything == expected(None, None) and last is None


def test_errors_reach_the_caller(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        with pytest.raises(FilterSyntaxError) as info:
            search_run_ids(conn, 1, filter="metrics.loss < 0.5 and")
        assert info.value.position == len("metrics.loss < 0.5 and")
        with pytest.raises(FilterSyntaxError, match="metrics hold numbers") as info:
            search_run_ids(conn, 1, filter="metrics.loss = 'low'")
        assert info.value.position == len("metrics.loss = ")
        with pytest.raises(InvalidArgument, match="order_by"):
            search_run_ids(conn, 1, order_by="-metrics.loss desc")


def test_an_empty_project_and_an_empty_result(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert search_run_ids(conn, 999) == ([], None)
        assert search_run_ids(conn, 1, filter="params.lr = 42") == ([], None)
        assert search_run_ids(conn, 1, filter="metrics.nope = 1") == ([], None)


def test_reference_sanity() -> None:
    # The generated data exercises what the tests above rely on.
    assert any(r.metrics.get("loss", 0.0) is None for r in RUNS)
    assert any(r.attrs["end_time"] is None for r in RUNS)
    starts = [r.attrs["start_time"] for r in RUNS]
    assert len(set(starts)) < len(starts)
    assert any(r.params.get("lr") == (None, "auto") for r in RUNS)
    assert not math.isnan(sum(v for r in RUNS for v in r.metrics.values() if v is not None))
