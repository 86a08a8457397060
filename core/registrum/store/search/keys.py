"""What a project's runs can be searched and shown by: its param, metric and tag keys, and
run counts.

Each query reads index entries only, so they stay cheap on a project of 100,000 runs:
a key is a param key if one row of `params` holds it (the `(key_id, value_num, run_id)`
index answers that with one probe), a metric key likewise from `metric_summaries`; the
distinct tag keys come from the `(key, run_id)` index of `run_tags`, each checked for one
run of the project.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import exists, func, select

from registrum.store import schema as t


def project_keys(conn: sa.Connection, project_id: int) -> dict[str, list[str]]:
    """`{"params": [...], "metrics": [...], "tags": [...]}`: the keys any run of the project
    has, each list sorted."""
    k = t.keys.c
    is_param = exists().where(t.params.c.key_id == k.id)
    is_metric = exists().where(t.metric_summaries.c.key_id == k.id)
    params: list[str] = []
    metrics: list[str] = []
    rows = conn.execute(
        select(k.name, is_param.label("param"), is_metric.label("metric")).where(
            k.project_id == project_id
        )
    )
    for name, param, metric in rows:
        if param:
            params.append(str(name))
        if metric:
            metrics.append(str(name))
    distinct = select(t.run_tags.c.key).distinct().subquery()
    tag = t.run_tags.alias()
    in_project = (
        select(tag.c.run_id)
        .join(t.runs, t.runs.c.id == tag.c.run_id)
        .where(tag.c.key == distinct.c.key, t.runs.c.project_id == project_id)
        .exists()
    )
    tags = [str(key) for key in conn.execute(select(distinct.c.key).where(in_project)).scalars()]
    return {"params": sorted(params), "metrics": sorted(metrics), "tags": sorted(tags)}


def run_counts(conn: sa.Connection, project_ids: Sequence[int]) -> dict[int, int]:
    """How many runs each project holds (absent: none), counted on the runs index."""
    if not project_ids:
        return {}
    r = t.runs.c
    rows = conn.execute(
        select(r.project_id, func.count())
        .where(r.project_id.in_(list(project_ids)), r.deleted_at.is_(None))
        .group_by(r.project_id)
    )
    return {int(project_id): int(count) for project_id, count in rows}
