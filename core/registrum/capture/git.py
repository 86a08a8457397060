"""The code version of a run: git commit, branch, remote, and uncommitted changes."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["GitState", "capture_git", "strip_credentials"]

logger = logging.getLogger("registrum")

_TIMEOUT_S = 5.0
_TRUNCATED = "\n[registrum: diff truncated at {limit} bytes]\n"
_TIMED_OUT = "\n[registrum: diff incomplete, git diff timed out]\n"


@dataclass(frozen=True)
class GitState:
    """The state of the git working tree a run started from.

    Attributes:
        root: Absolute path of the working tree's top folder.
        commit: Full sha of ``HEAD``; None in a repository without commits.
        branch: Checked-out branch; None when ``HEAD`` is detached.
        remote_url: URL of the branch's upstream remote, else of ``origin``, else
            None; user names and passwords are removed from http(s) URLs.
        dirty: Whether tracked files changed or untracked, non-ignored files exist;
            None when git could not tell (for instance, ``git status`` timed out).
        diff: ``git diff HEAD`` followed by the untracked file names, capped at
            the size given to `capture_git`.
        diff_truncated: Whether ``diff`` was cut at that size.
    """

    root: str
    commit: str | None
    branch: str | None
    remote_url: str | None
    dirty: bool | None
    diff: str
    diff_truncated: bool

    def to_dict(self, *, include_diff: bool = False) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict.

        Args:
            include_diff: Whether to keep ``diff``, which the client stores as an
                artifact rather than as metadata.
        """
        fields = asdict(self)
        if not include_diff:
            del fields["diff"]
        return fields


def capture_git(
    path: str | Path | None = None, *, max_diff_bytes: int = 1_000_000
) -> GitState | None:
    """Record the git state of the working tree holding ``path``.

    Never raises: a git command that fails or times out leaves its field empty.

    Args:
        path: A file or folder inside the working tree; the current working
            directory when None.
        max_diff_bytes: The most bytes of ``diff`` kept before a truncation marker.

    Returns:
        The state, or None outside a git working tree or without git on PATH.
    """
    try:
        start = Path.cwd() if path is None else Path(path)
        return _capture(start, max(0, max_diff_bytes))
    except Exception as exc:  # tracking never breaks the run
        logger.warning("registrum: could not capture the git state: %s", exc)
        return None


def _capture(path: Path, max_diff_bytes: int) -> GitState | None:
    if shutil.which("git") is None:
        return None
    start = path if path.is_dir() else path.parent
    if not start.is_dir():
        return None
    root = _git(start, "rev-parse", "--show-toplevel")
    if not root:
        return None
    cwd = Path(root)
    commit = _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    branch = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    status = _run(cwd, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
    untracked = _untracked(status) if status is not None else []
    diff, truncated = _diff(cwd, commit, untracked, max_diff_bytes)
    return GitState(
        root=root,
        commit=commit,
        branch=branch,
        remote_url=_remote_url(cwd, branch),
        dirty=None if status is None else bool(status),
        diff=diff,
        diff_truncated=truncated,
    )


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    # Reading must not take index.lock and collide with the user's own git commands.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    return env


def _run(cwd: Path, *args: str) -> bytes | None:
    """Run git; its stdout, or None when it failed or timed out."""
    try:
        result = subprocess.run(
            ["git", *args],
            capture_output=True,
            timeout=_TIMEOUT_S,
            cwd=cwd,
            env=_environment(),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def _git(cwd: Path, *args: str) -> str | None:
    out = _run(cwd, *args)
    text = out.decode("utf-8", "replace").strip() if out is not None else ""
    return text or None


def _untracked(status: bytes) -> list[str]:
    entries = status.split(b"\0")
    names = []
    skip = False
    for entry in entries:
        if skip:  # the source path of a rename or copy
            skip = False
            continue
        if entry.startswith(b"??"):
            names.append(entry[3:].decode("utf-8", "replace"))
        elif entry[:1] in (b"R", b"C"):
            skip = True
    return names


def _remote_url(cwd: Path, branch: str | None) -> str | None:
    remotes = []
    if branch is not None:
        upstream = _git(cwd, "config", "--get", f"branch.{branch}.remote")
        if upstream and upstream != ".":
            remotes.append(upstream)
    remotes.append("origin")
    for remote in remotes:
        url = _git(cwd, "remote", "get-url", remote)
        if url:
            return strip_credentials(url)
    return None


def strip_credentials(url: str) -> str:
    """Remove the user name and password from a URL that carries them.

    ``https://user:token@host/repo`` becomes ``https://host/repo``. For ssh only
    a password is removed, since ``ssh://git@host/repo`` names no secret;
    scp-like ``git@host:repo`` addresses are kept as they are.

    Args:
        url: A git remote URL.

    Returns:
        The URL without credentials.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if parts.scheme in ("ssh", "git+ssh", "ssh+git"):
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    else:
        netloc = host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _diff(cwd: Path, commit: str | None, untracked: list[str], limit: int) -> tuple[str, bool]:
    # Without commits, compare with the empty tree (its id depends on the hash algorithm).
    base = commit or _git(cwd, "hash-object", "-t", "tree", os.devnull)
    if base is None:
        return "", False
    args = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", base]
    head, complete = _run_capped(cwd, args, limit + 1)
    if untracked:
        listing = "".join(f"# untracked: {name}\n" for name in untracked)
        head += b"\n# Untracked files (contents not included):\n" + listing.encode()
    if not complete:
        return head[:limit].decode("utf-8", "replace") + _TIMED_OUT, True
    truncated = len(head) > limit
    text = head[:limit].decode("utf-8", "replace")
    if truncated:
        text += _TRUNCATED.format(limit=limit)
    return text, truncated


def _run_capped(cwd: Path, args: list[str], limit: int) -> tuple[bytes, bool]:
    """Run git reading at most ``limit`` bytes of stdout, so memory stays bounded.

    Returns:
        The bytes read, and False when git was stopped by the timeout.
    """
    try:
        process = subprocess.Popen(
            ["git", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=_environment(),
        )
    except OSError:
        return b"", True
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(_TIMEOUT_S, stop)
    timer.daemon = True
    timer.start()
    chunks: list[bytes] = []
    try:
        assert process.stdout is not None
        remaining = limit
        while remaining > 0:
            chunk = process.stdout.read(min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        process.stdout.close()
        if process.poll() is None:
            process.kill()  # we have all we keep; git need not write the rest
        process.wait()
    finally:
        timer.cancel()
    return b"".join(chunks), not timed_out.is_set()
