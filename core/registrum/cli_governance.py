"""Commands that answer questions across runs (lineage, evaluations, datasets, code versions)
and keep account of changes (the audit trail)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def _node_line(node: dict[str, Any]) -> str:
    kind = node["kind"]
    if kind == "run":
        detail = f"{node['name'] or '-'} ({node['job_type'] or '-'}, {node['status']})"
    elif kind == "model":
        aliases = " @" + " @".join(node["aliases"]) if node["aliases"] else ""
        detail = f"{node['label']}{aliases}"
    elif kind == "dataset":
        rows = f", {node['rows']:,} rows" if node.get("rows") is not None else ""
        detail = f"{node['label']} (fingerprint {node['fingerprint'][:12]}{rows})"
    elif kind == "code":
        detail = f"branch {node['branch'] or '-'}, {node['remote'] or 'no remote'}"
    else:
        detail = f"{node['label']} ({node['type']})"
    return f"{node['id']}  {detail}"


def print_lineage(graph: dict[str, Any], print_: Callable[[str], None] = print) -> None:
    """The graph as trees from its start nodes: upstream with `<-`, downstream with `->`."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    parents: dict[str, list[tuple[str, str]]] = {}
    children: dict[str, list[tuple[str, str]]] = {}
    for e in graph["edges"]:
        parents.setdefault(e["target"], []).append((e["source"], e["role"]))
        children.setdefault(e["source"], []).append((e["target"], e["role"]))

    def walk(
        node: str, links: dict[str, list[tuple[str, str]]], arrow: str, depth: int, path: set[str]
    ) -> None:
        for other, role in sorted(links.get(node, [])):
            cycle = " (shown above)" if other in path else ""
            print_(f"{'    ' * depth}{arrow} {role}: {_node_line(nodes[other])}{cycle}")
            if not cycle:
                walk(other, links, arrow, depth + 1, path | {other})

    for start in graph["start"]:
        print_(_node_line(nodes[start]))
        walk(start, parents, "<-", 1, {start})
        walk(start, children, "->", 1, {start})
    if graph["truncated"]:
        print_("(the graph was cut at its size limit: ask for a smaller --depth)")


def _lineage(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args, read=True) as client:
        graph = client.lineage(args.node, direction=args.direction, depth=args.depth)
    print_lineage(graph)
    return 0


def _models_evals(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args, read=True) as client:
        history = client.evaluations(args.name)
    if not history["evaluations"]:
        print(f"{args.name}: no evaluations yet (runs that use_model a version and log metrics)")
        return 0
    labels = {d["id"]: f"{d['project']}/{d['name']} v{d['version']}" for d in history["datasets"]}
    by_dataset: dict[Any, dict[tuple[int, str], dict[str, Any]]] = {}
    for cell in history["evaluations"]:
        by_dataset.setdefault(cell["dataset"], {})[cell["version"], cell["metric"]] = cell
    for dataset, cells in by_dataset.items():
        metrics = sorted({m for _, m in cells})
        versions = sorted({ver for ver, _ in cells})
        print(f"on {labels.get(dataset, 'no recorded dataset')}:")
        print("  version  " + "  ".join(f"{m:>14}" for m in metrics))
        for ver in versions:
            values = [cells.get((ver, m)) for m in metrics]
            shown = [f"{c['value']:>14.6g}" if c else f"{'-':>14}" for c in values]
            print(f"  {ver:>7}  " + "  ".join(shown))
    return 0


def _runs_code(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args, read=True) as client:
        if args.other is None:
            code = client.code_version(args.run_id)
            diff = client.code_diff(args.run_id) if code else None
            if code is None:
                print(f"run {args.run_id}: no code version recorded")
                return 0
            print(f"run {args.run_id}")
            for field in ("commit", "branch", "remote", "dirty"):
                print(f"  {field}: {code[field]}")
            if diff:
                print(f"  uncommitted diff ({len(diff.splitlines())} lines):")
                print(diff if args.diff else "  (--diff prints it)")
            return 0
        compared = client.compare_code(args.run_id, args.other)
    print(
        f"code of {args.run_id} and {args.other}: "
        f"{'the same' if compared['same_code'] else 'different'}"
    )
    for field, (a, b) in compared["differences"].items():
        print(f"  {field}: {a}  ->  {b}")
    if compared["diff_of_diffs"]:
        print(compared["diff_of_diffs"])
    return 0


def _datasets_list(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args, read=True) as client:
        versions = client.dataset_versions(args.project, args.name)
        trained = {
            d["version"]: d["models"] for d in client.dataset_models(args.project, args.name)
        }
    print(f"{'version':>7}  {'rows':>10}  {'fingerprint':<16}  models trained on it")
    for d in versions:
        models = ", ".join(f"{m['name']}@{m['version']}" for m in trained.get(d.version, []))
        rows = "-" if d.rows is None else f"{d.rows:,}"
        print(f"{d.version:>7}  {rows:>10}  {d.fingerprint[:16]:<16}  {models or '-'}")
    return 0


def _datasets_diff(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args, read=True) as client:
        diff = client.diff_datasets(args.project, args.name, args.a, args.b)
    a, b = diff["a"], diff["b"]
    print(
        f"{args.name} v{a['version']} -> v{b['version']}: "
        f"{'same content' if diff['same_content'] else 'different content'}"
    )
    rows = diff["rows"]
    print(f"  rows: {rows['a']} -> {rows['b']}")
    for title in ("added", "removed"):
        for key, value in diff["schema"][title].items():
            print(f"  {title} {key}: {value}")
    for key, (old, new) in diff["schema"]["changed"].items():
        print(f"  changed {key}: {old} -> {new}")
    return 0


def _audit_list(args: argparse.Namespace) -> int:
    from registrum.cli import _client, _when

    with _client(args, read=True) as client:
        events = client.audit(
            project=args.project, action=args.event_action, actor=args.actor, limit=args.limit
        )
    for e in events:
        print(
            f"{e['id']:>7}  {_when(e['at'])}  {e['actor']:<24}  {e['action']:<22}  "
            f"{e['entity_type']}:{e['entity_id']}"
        )
    return 0


def _read_anchors(paths: list[str]) -> list[dict[str, Any]]:
    """The anchors in each file: one JSON object (as `audit anchor` prints it), a JSON list of
    them, or one a line (an anchors file); each labelled with where it came from."""
    import json

    from registrum.errors import InvalidArgument

    anchors: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InvalidArgument(f"cannot read anchor file {path}: {exc.strerror}") from None
        try:
            parsed = json.loads(text)
            found = parsed if isinstance(parsed, list) else [parsed]
            labels = (
                [path]
                if not isinstance(parsed, list)
                else [f"{path}[{i}]" for i in range(len(found))]
            )
        except ValueError:
            lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            try:
                found = [json.loads(line) for _, line in lines]
            except ValueError:
                raise InvalidArgument(
                    f"{path} holds no anchor: expected the JSON that `registrum audit anchor` "
                    "prints, a list of them, or one a line"
                ) from None
            labels = [f"{path}:{n}" for n, _ in lines]
        for label, anchor in zip(labels, found, strict=True):
            anchors.append({**anchor, "source": label} if isinstance(anchor, dict) else anchor)
    return anchors


def _audit_verify(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    anchors = _read_anchors(args.anchor) if args.anchor else None
    with _client(args, read=True) as client:
        result = client.verify_audit(anchors)
    if result["ok"]:
        print(
            f"audit trail intact: {result['events']} events, every hash and link checks out, "
            f"and the chain extends all {result['anchors']} anchor(s) checked"
        )
        head = result.get("anchor")
        if head:
            print(f"head signed: event {head['event']}, hash {head['hash']}, {head['time']}")
        return 0
    print(f"audit trail BROKEN ({result['events']} events):")
    for problem in result["problems"]:
        if "anchor" in problem:
            print(f"  {problem['problem']}")
        else:
            print(f"  event {problem['id']}: {problem['problem']}")
    return 1


def _audit_anchor(args: argparse.Namespace) -> int:
    import json

    from registrum.cli import _client

    with _client(args, read=True) as client:
        anchor = client.audit_anchor()
    print(json.dumps(anchor, indent=2))
    return 0


def _webhooks_add(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args) as client:
        hook = client.add_webhook(
            args.url, args.event, project=args.project, model=args.model, secret=args.secret
        )
    scope = f"model {hook['model']}" if hook["model"] else f"project {hook['project']}"
    print(f"webhook {hook['id']}: {', '.join(hook['events'])} of {scope} -> {hook['url']}")
    print(f"secret (shown this once; receivers check signatures with it): {hook['secret']}")
    return 0


def _webhooks_list(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args, read=True) as client:
        hooks = client.webhooks(project=args.project, model=args.model)
    for hook in hooks:
        scope = f"model:{hook['model']}" if hook["model"] else f"project:{hook['project']}"
        print(f"{hook['id']}  {scope:<24}  {','.join(hook['events']):<40}  {hook['url']}")
    return 0


def _webhooks_remove(args: argparse.Namespace) -> int:
    from registrum.cli import _client

    with _client(args) as client:
        client.remove_webhook(args.webhook_id)
    print(f"removed webhook {args.webhook_id}")
    return 0


def _webhooks_deliveries(args: argparse.Namespace) -> int:
    from registrum.cli import _client, _when

    with _client(args, read=True) as client:
        deliveries = client.webhook_deliveries(
            args.webhook_id, status=args.status, limit=args.limit
        )
    for d in deliveries:
        outcome = d["last_error"] or (f"HTTP {d['last_status']}" if d["last_status"] else "-")
        print(
            f"{d['id']:>7}  event {d['event_id']:<7}  {d['action']:<22}  {d['status']:<9}  "
            f"{d['attempts']} attempt(s)  {_when(d['last_attempt_at'])}  {outcome}"
        )
    return 0


def add_commands(commands: Any, runs: Any, models: Any, store_help: str) -> None:
    """Adds `lineage`, `models evals`, `runs code`, `audit ...`, `datasets ...` and
    `webhooks ...` to the parser."""
    lineage = commands.add_parser(
        "lineage", help="where a model, run or dataset came from and what came from it"
    )
    lineage.add_argument(
        "node", help="NAME@VERSION, NAME@ALIAS, model:NAME/3, run:ID, dataset:NAME[/2], code:COMMIT"
    )
    lineage.add_argument("--direction", choices=["up", "down", "both"], default="both")
    lineage.add_argument("--depth", type=int, default=3, help="steps to follow (default 3)")
    lineage.add_argument("--store", default=None, help=store_help)
    lineage.set_defaults(handler=_lineage)

    evals = models.add_parser("evals", help="how every version did on each evaluation dataset")
    evals.add_argument("name")
    evals.add_argument("--store", default=None, help=store_help)
    evals.set_defaults(handler=_models_evals)

    code = runs.add_parser("code", help="a run's code version, or two runs' compared")
    code.add_argument("run_id")
    code.add_argument("other", nargs="?", default=None, help="a second run to compare with")
    code.add_argument("--diff", action="store_true", help="print the uncommitted diff")
    code.add_argument("--store", default=None, help=store_help)
    code.set_defaults(handler=_runs_code)

    audit = commands.add_parser(
        "audit", help="the audit trail: every change, who made it, and a check of its chain"
    ).add_subparsers(dest="audit_command", required=True)
    audit_list = audit.add_parser("list", help="events, newest first")
    audit_list.add_argument("--project", default=None)
    audit_list.add_argument(
        "--action", dest="event_action", default=None, help='e.g. "alias.moved"'
    )
    audit_list.add_argument("--actor", default=None)
    audit_list.add_argument("--limit", type=int, default=50)
    audit_list.add_argument("--store", default=None, help=store_help)
    audit_list.set_defaults(handler=_audit_list)
    verify = audit.add_parser(
        "verify", help="check every event's hash and link, and that the chain extends anchors"
    )
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="FILE",
        help="a signed head saved from `registrum audit anchor` (repeat for several); "
        "each is checked besides the anchors recorded beside the audit key",
    )
    verify.add_argument("--store", default=None, help=store_help)
    verify.set_defaults(handler=_audit_verify)
    anchor = audit.add_parser(
        "anchor", help="print the chain's head signed with the audit key, to keep off-site"
    )
    anchor.add_argument("--store", default=None, help=store_help)
    anchor.set_defaults(handler=_audit_anchor)

    datasets = commands.add_parser(
        "datasets", help="dataset versions, their differences and the models trained on them"
    ).add_subparsers(dest="action", required=True)
    listing = datasets.add_parser("list", help="the versions of a dataset")
    listing.add_argument("project")
    listing.add_argument("name")
    listing.add_argument("--store", default=None, help=store_help)
    listing.set_defaults(handler=_datasets_list)
    diff = datasets.add_parser("diff", help="how two versions differ")
    for arg in ("project", "name", "a", "b"):
        diff.add_argument(arg)
    diff.add_argument("--store", default=None, help=store_help)
    diff.set_defaults(handler=_datasets_diff)

    webhooks = commands.add_parser(
        "webhooks", help="signed HTTP callbacks on a project's or a model's events"
    ).add_subparsers(dest="webhooks_command", required=True)
    add = webhooks.add_parser("add", help="subscribe a URL; prints its secret once")
    add.add_argument("url", help="http(s) URL that receives the POSTs")
    add.add_argument(
        "--event",
        action="append",
        required=True,
        help="run.finished, model_version.created, alias.moved, approval.requested or "
        "approval.decided (repeat for several)",
    )
    scope = add.add_mutually_exclusive_group(required=True)
    scope.add_argument("--project", default=None, help="every matching event of a project")
    scope.add_argument("--model", default=None, help="the matching events of one model")
    add.add_argument("--secret", default=None, help="signing secret (default: generated)")
    add.add_argument("--store", default=None, help=store_help)
    add.set_defaults(handler=_webhooks_add)
    hooks_list = webhooks.add_parser("list", help="webhooks, of a project or a model")
    hooks_list.add_argument("--project", default=None)
    hooks_list.add_argument("--model", default=None)
    hooks_list.add_argument("--store", default=None, help=store_help)
    hooks_list.set_defaults(handler=_webhooks_list)
    remove = webhooks.add_parser("remove", help="remove a webhook and its delivery log")
    remove.add_argument("webhook_id")
    remove.add_argument("--store", default=None, help=store_help)
    remove.set_defaults(handler=_webhooks_remove)
    log = webhooks.add_parser("deliveries", help="a webhook's delivery log, newest first")
    log.add_argument("webhook_id")
    log.add_argument("--status", choices=["pending", "delivered", "failed"], default=None)
    log.add_argument("--limit", type=int, default=50)
    log.add_argument("--store", default=None, help=store_help)
    log.set_defaults(handler=_webhooks_deliveries)
