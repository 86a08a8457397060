import json
import shutil
import subprocess
from pathlib import Path

import pytest

from registrum.capture.git import capture_git, strip_credentials

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git on PATH")


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    return path


@pytest.fixture
def committed(repo: Path) -> Path:
    (repo / "train.py").write_text("print('train')\n")
    (repo / ".gitignore").write_text("outputs/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_clean_repository(committed: Path) -> None:
    state = capture_git(committed)
    assert state is not None
    assert state.commit == git(committed, "rev-parse", "HEAD")
    assert state.branch == "main"
    assert state.dirty is False
    assert state.diff == ""
    assert state.diff_truncated is False
    assert state.remote_url is None
    assert Path(state.root) == committed.resolve()
    json.dumps(state.to_dict())
    assert "diff" not in state.to_dict()
    assert state.to_dict(include_diff=True)["diff"] == ""


def test_path_may_be_a_file_or_subfolder(committed: Path) -> None:
    (committed / "src").mkdir()
    for path in (committed / "train.py", committed / "src"):
        state = capture_git(path)
        assert state is not None
        assert Path(state.root) == committed.resolve()


def test_tracked_change_is_dirty_with_diff(committed: Path) -> None:
    (committed / "train.py").write_text("print('train harder')\n")
    state = capture_git(committed)
    assert state is not None
    assert state.dirty is True
    assert "-print('train')" in state.diff
    assert "+print('train harder')" in state.diff


def test_staged_change_appears_in_diff(committed: Path) -> None:
    (committed / "model.py").write_text("W = 1\n")
    git(committed, "add", "model.py")
    state = capture_git(committed)
    assert state is not None
    assert state.dirty is True
    assert "+W = 1" in state.diff


def test_untracked_files_are_dirty_and_listed_but_ignored_ones_are_not(
    committed: Path,
) -> None:
    (committed / "outputs").mkdir()
    (committed / "outputs" / "big.bin").write_bytes(b"x" * 100)
    state = capture_git(committed)
    assert state is not None
    assert state.dirty is False

    (committed / "notes.txt").write_text("secret content\n")
    state = capture_git(committed)
    assert state is not None
    assert state.dirty is True
    assert "notes.txt" in state.diff
    assert "secret content" not in state.diff
    assert "outputs" not in state.diff


def test_binary_change_is_safe_text(committed: Path) -> None:
    (committed / "weights.bin").write_bytes(bytes(range(256)) * 4)
    git(committed, "add", "weights.bin")
    (committed / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    git(committed, "add", "latin1.txt")
    state = capture_git(committed)
    assert state is not None
    assert "weights.bin" in state.diff
    state.diff.encode("utf-8")


def test_detached_head(committed: Path) -> None:
    (committed / "train.py").write_text("v2\n")
    git(committed, "commit", "-q", "-am", "second")
    first = git(committed, "rev-parse", "HEAD~1")
    git(committed, "checkout", "-q", "--detach", first)
    state = capture_git(committed)
    assert state is not None
    assert state.commit == first
    assert state.branch is None
    assert state.dirty is False


def test_repository_without_commits(repo: Path) -> None:
    state = capture_git(repo)
    assert state is not None
    assert state.commit is None
    assert state.branch == "main"
    assert state.dirty is False

    (repo / "a.py").write_text("A = 1\n")
    git(repo, "add", "a.py")
    (repo / "b.py").write_text("B = 2\n")
    state = capture_git(repo)
    assert state is not None
    assert state.commit is None
    assert state.dirty is True
    assert "+A = 1" in state.diff
    assert "b.py" in state.diff


def test_credentials_are_removed_from_the_remote(committed: Path) -> None:
    git(committed, "remote", "add", "origin", "https://alice:ghp_secret@github.com/org/repo.git")
    state = capture_git(committed)
    assert state is not None
    assert state.remote_url == "https://github.com/org/repo.git"
    assert "ghp_secret" not in json.dumps(state.to_dict(include_diff=True))


def test_upstream_remote_is_preferred_to_origin(committed: Path) -> None:
    git(committed, "remote", "add", "origin", "https://github.com/me/fork.git")
    git(committed, "remote", "add", "upstream", "git@github.com:org/repo.git")
    git(committed, "config", "branch.main.remote", "upstream")
    state = capture_git(committed)
    assert state is not None
    assert state.remote_url == "git@github.com:org/repo.git"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@host.com/org/repo.git", "https://host.com/org/repo.git"),
        ("https://token@host.com:8443/repo", "https://host.com:8443/repo"),
        ("http://host.com/repo", "http://host.com/repo"),
        ("ssh://git@host.com/repo.git", "ssh://git@host.com/repo.git"),
        ("ssh://git:pw@host.com/repo.git", "ssh://git@host.com/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


def test_oversize_diff_is_truncated(committed: Path) -> None:
    (committed / "train.py").write_text("".join(f"line {i}\n" for i in range(20_000)))
    state = capture_git(committed, max_diff_bytes=1000)
    assert state is not None
    assert state.diff_truncated is True
    assert "diff truncated at 1000 bytes" in state.diff
    assert len(state.diff.encode()) < 1200

    full = capture_git(committed)
    assert full is not None
    assert full.diff_truncated is False
    assert full.diff.startswith(state.diff[:1000])


def test_outside_a_repository(tmp_path: Path) -> None:
    assert capture_git(tmp_path) is None
    assert capture_git(tmp_path / "missing") is None


def test_without_git_on_path(
    committed: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert capture_git(committed) is None


def test_defaults_to_the_working_directory(
    committed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(committed)
    state = capture_git()
    assert state is not None
    assert Path(state.root) == committed.resolve()
