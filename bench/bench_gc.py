"""`registrum gc` over a large store: time, memory, and how both grow with the store.

Each store holds N runs in one project, each run with one checkpoint artifact of one file.
The files declare 10 MB each (10^7 bytes), so 100,000 runs reference 1 TB; the blobs on
disk are small (the collection never reads a blob's bytes, it only removes them), which is
what "1 TB-equivalent" means here. 1% of the runs registered a model version; half of the
others were deleted 8 days ago. A collection with the default grace
removes those runs, their artifacts, params and metrics, then their blobs.

The store is filled with bulk inserts (the service would take hours for 100,000 runs); the
collection is `Store.collect_garbage` in a fresh process, as `registrum gc` runs it.
Printed per size: the dry run's and the collection's time, the collecting process's peak
memory, what it removed, and a second collection's time (nothing left to remove: the cost
of the scheduled job on a steady store).

    python bench/bench_gc.py                      # 10k, 30k, 100k runs on SQLite
    python bench/bench_gc.py --sizes 100000 --db both
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import postgres_database, print_platform

DECLARED = 10**7  # bytes each file declares: 10^5 runs x 10^7 = 1 TB
GRACE_PAST = 8 * 86400.0


def fill(store: object, runs: int, blobs: Path) -> None:
    """N runs, their artifacts, files, blobs (on disk too), params, metric summaries, and
    registered versions for 1% of them; half of the rest deleted 8 days ago."""
    from sqlalchemy import insert

    from registrum.store import schema as t

    engine = store.engine  # type: ignore[attr-defined]
    now = time.time()
    old = now - GRACE_PAST
    project = store.create_project("big")  # type: ignore[attr-defined]
    with engine.begin() as conn:
        key_id = conn.execute(
            insert(t.keys).values(project_id=project.id, name="lr").returning(t.keys.c.id)
        ).scalar_one()
    batch = 5000
    for first in range(0, runs, batch):
        rows: dict[str, list[dict[str, object]]] = {
            "runs": [],
            "artifacts": [],
            "files": [],
            "blobs": [],
            "params": [],
            "versions": [],
        }
        for i in range(first, min(first + batch, runs)):
            run_id = uuid.UUID(int=i + 1).hex
            registered = i % 100 == 0
            deleted = not registered and i % 2 == 1
            content = f"checkpoint of run {i}".encode()
            sha = hashlib.sha256(content).hexdigest()
            path = blobs / sha[:2] / sha[2:4] / sha
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            rows["runs"].append(
                {
                    "id": run_id,
                    "project_id": project.id,
                    "name": f"run-{i}",
                    "status": "finished",
                    "start_time": old,
                    "end_time": old + 60,
                    "created_at": old,
                    "deleted_at": old if deleted else None,
                }
            )
            rows["artifacts"].append(
                {
                    "id": i + 1,
                    "project_id": project.id,
                    "name": "checkpoints",
                    "version": i + 1,
                    "type": "checkpoint",
                    "digest": sha,
                    "run_id": run_id,
                    "size": DECLARED,
                    "file_count": 1,
                    "metadata": "{}",
                    "created_at": old,
                    "deleted_at": old if deleted else None,
                }
            )
            rows["files"].append(
                {"artifact_id": i + 1, "path": "model.ckpt", "sha256": sha, "size": DECLARED}
            )
            rows["blobs"].append(
                {"sha256": sha, "size": DECLARED, "created_at": old, "used_at": old}
            )
            rows["params"].append(
                {
                    "run_id": run_id,
                    "key_id": key_id,
                    "value_type": "float",
                    "value_json": "0.1",
                    "value_num": 0.1,
                    "updated_at": old,
                }
            )
            if registered:
                rows["versions"].append({"run_id": run_id, "artifact_id": i + 1})
        with engine.begin() as conn:
            conn.execute(insert(t.runs), rows["runs"])
            conn.execute(insert(t.artifacts), rows["artifacts"])
            conn.execute(insert(t.blobs), rows["blobs"])
            conn.execute(insert(t.artifact_files), rows["files"])
            conn.execute(insert(t.params), rows["params"])
            if rows["versions"]:
                model_id = _model(conn, project.id, now)
                for n, version in enumerate(rows["versions"]):
                    conn.execute(
                        insert(t.model_versions).values(
                            model_id=model_id,
                            version=first // 100 + n + 1,
                            metrics="{}",
                            params="{}",
                            created_at=old,
                            updated_at=old,
                            **version,
                        )
                    )


def _model(conn: object, project_id: int, now: float) -> int:
    from sqlalchemy import insert, select

    from registrum.store import schema as t

    found = conn.execute(  # type: ignore[attr-defined]
        select(t.registered_models.c.id).where(t.registered_models.c.name == "big-model")
    ).scalar()
    if found is not None:
        return int(found)
    return int(
        conn.execute(  # type: ignore[attr-defined]
            insert(t.registered_models)
            .values(
                project_id=project_id,
                name="big-model",
                last_version=10**6,
                created_at=now,
                updated_at=now,
            )
            .returning(t.registered_models.c.id)
        ).scalar_one()
    )


_COLLECT = """
import json, resource, sys, time
from registrum.store import open_store
store = open_store(sys.argv[1], blobs=sys.argv[2])
began = time.perf_counter()
report = store.collect_garbage(dry_run=sys.argv[3] == "dry")
took = time.perf_counter() - began
store.close()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"report": report.to_dict(), "seconds": took, "peak_mib": peak}))
"""


def collect(url: str, blobs: Path, *, dry: bool) -> dict[str, Any]:
    """One collection in a fresh process, as `registrum gc` runs: its report, its time, and
    the process's peak resident memory (imports included)."""
    out = subprocess.run(
        [sys.executable, "-c", _COLLECT, url, str(blobs), "dry" if dry else "real"],
        capture_output=True,
        text=True,
        check=True,
    )
    answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return answer


def measure(label: str, url: str, folder: Path, runs: int) -> None:
    from registrum.store import open_store

    blobs = folder / "blobs"
    store = open_store(url, blobs=blobs)
    try:
        began = time.perf_counter()
        fill(store, runs, blobs)
        filled = time.perf_counter() - began
    finally:
        store.close()
    dry = collect(url, blobs, dry=True)
    real = collect(url, blobs, dry=False)
    steady = collect(url, blobs, dry=False)
    report, removed = real["report"], real["report"]["runs"]
    assert (dry["report"]["runs"], dry["report"]["blobs"]) == (removed, report["blobs"])
    assert steady["report"]["runs"] == 0 and steady["report"]["blobs"] == 0
    print(
        f"{label} {runs:>7,} runs ({runs * DECLARED / 1e12:.2f} TB referenced; filled in "
        f"{filled:.0f} s): dry run {dry['seconds']:.1f} s; collection {real['seconds']:.1f} s "
        f"({real['seconds'] / max(removed, 1) * 1e3:.2f} ms per run removed), removed "
        f"{removed:,} runs, {report['blobs']:,} blobs, {report['bytes'] / 1e12:.2f} TB; "
        f"peak memory of the collecting process {real['peak_mib']:.0f} MiB "
        f"(dry run {dry['peak_mib']:.0f} MiB); nothing left: {steady['seconds']:.1f} s",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,30000,100000", help="runs per store")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    args = parser.parse_args()
    print_platform()
    for runs in (int(x) for x in args.sizes.split(",")):
        if args.db in ("sqlite", "both"):
            with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
                measure("sqlite  ", f"sqlite:///{tmp}/r.db", Path(tmp), runs)
        if args.db in ("postgres", "both"):
            with (
                postgres_database("registrum_bench_gc") as url,
                tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp,
            ):
                measure("postgres", url, Path(tmp), runs)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("REGISTRUM_HOME", tempfile.mkdtemp(prefix="bench-gc-home-"))
    sys.exit(main())
