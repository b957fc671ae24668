"""A repository owned by another user, as on a real Forgejo server: the bare repositories belong to
the git user (uid 1000 in Forgejo's image), hooks run as that user, and an admin installs as root.

Here the git user is ``nobody``; the tests that use this are skipped unless they run as root
(which CI's container does). Everything lives in a private directory under /tmp made
world-traversable (pytest's own tmp_path is mode 0700, which ``nobody`` cannot enter).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: installs as root for another uid's repository")


@dataclass
class GitUser:
    uid: int
    gid: int
    home: Path

    def run(self, *args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command as this user, with a minimal environment (as Forgejo runs git)."""
        return subprocess.run(list(args), cwd=cwd, user=self.uid, group=self.gid, extra_groups=[],
                              env={"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                   "LANG": "C.UTF-8"},
                              capture_output=True, text=True, input=input, timeout=180)

    def git(self, cwd: Path, *args: str) -> str:
        done = self.run("git", *args, cwd=cwd)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def own(self, path: Path) -> None:
        """chown -R, without following symlinks (there are none in what the tests make)."""
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), self.uid, self.gid)
        os.lchown(path, self.uid, self.gid)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A fresh directory every user may traverse (0755), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="railguard-gituser-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def git_user(shared_dir: Path) -> GitUser:
    entry = pwd.getpwnam("nobody")
    home = shared_dir / "git-home"
    home.mkdir()
    user = GitUser(entry.pw_uid, entry.pw_gid, home)
    user.own(home)
    for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false"),
                       ("init.defaultBranch", "main")):
        user.git(home, "config", "--global", key, value)
    return user


def owned_repository(user: GitUser, directory: Path, *, files: dict[str, str]) -> tuple[Path, Path]:
    """A bare repository and a clone, both the user's, with one commit on main pushed."""
    bare, work = directory / "app.git", directory / "work"
    directory.mkdir(parents=True, exist_ok=True)
    user.own(directory)
    user.git(directory, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    user.git(directory, "init", "--quiet", "--initial-branch=main", str(work))
    user.git(work, "remote", "add", "origin", str(bare))
    commit(user, work, "first", files)
    push = user.run("git", "push", "--quiet", "origin", "main", cwd=work)
    assert push.returncode == 0, push.stderr
    return bare, work


def commit(user: GitUser, work: Path, message: str, files: dict[str, str | None]) -> str:
    for name, text in files.items():
        if text is None:
            user.run("rm", "-f", name, cwd=work)
        else:
            done = user.run("sh", "-c", 'cat > "$1"', "sh", name, cwd=work, input=text)
            assert done.returncode == 0, done.stderr
    user.git(work, "add", "--all")
    user.git(work, "commit", "--quiet", "--allow-empty", "-m", message)
    return user.git(work, "rev-parse", "HEAD")


@pytest.fixture
def git_user_python(git_user: GitUser, shared_dir: Path) -> str:
    """A Python the git user can run, with this railguard importable: this interpreter when that
    user can run it (a system or /opt install), else a venv of the system's python3 of the same
    version whose .pth lists this checkout's site-packages and src (this machine's interpreter
    lives under /root, mode 0700, as a developer's pyenv often does)."""
    if git_user.run("sh", "-c", 'test -x "$1"', "sh", sys.executable, cwd=shared_dir).returncode == 0:
        return sys.executable
    system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if system is None:
        pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} the git user can run")
    venv = shared_dir / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    source = Path(__file__).resolve().parents[1] / "src"
    Path(site, "railguard-under-test.pth").write_text(f"{sysconfig.get_path('purelib')}\n{source}\n")
    return str(venv / "bin" / "python")
