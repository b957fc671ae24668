"""A pre-receive hook in POSIX sh that asks the gate (``POST /api/v1/check``) to test a push
(``railguard hook install --remote URL``), installed through :mod:`railguard.deploy.hook.install`.

Forgejo's official image has git, curl and a POSIX shell but no Python, so this hook does only
what those can: for each ref line on stdin it sends ``git archive`` of the new commit to the
gate with curl, prints the gate's lines (they reach the pusher as ``remote:`` lines) and
rejects the push unless every answer is ``pass``. It fails closed: no answer from the gate is a
rejection.

The shared secret is read from a file at push time (Forgejo runs hooks with a minimal
environment) and handed to curl in a header file made with mode 0600, never in an argv.
The ref name is only ever a quoted variable passed as one argument; nothing is ``eval``'d.

Where the secret lives: the hook runs as the git user, and inside Forgejo's container when
Forgejo runs in Docker, where the repository sits at another path than on the host
(``/data/git/repositories/...`` in the official image). So the default secret file,
``hooks/railguard-gate.secret``, is named in the hook **relative to the repository**: git runs a
bare repository's hooks with the repository as their working directory (githooks(5)), on the
host and in the container alike. It is written as the repository's owner, mode 0600, so the git
user (and root) can read it, and nobody else. ``--secret-file`` names a path as the hook sees it.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from railguard.deploy.hook.install import (
    MARKER,
    Owner,
    chained_lines,
    ensure_directory,
    hook_place,
    hooks_dir,
    put_hook,
    repository_owner,
    write_in_repository,
)
from railguard.errors import ConfigError, UsageError
from railguard.secrets import Secret

SECRET_FILE_NAME = "railguard-gate.secret"
#: The gate runs the whole suite while git waits; this bounds one ref's wait.
DEFAULT_MAX_SECONDS = 1800

_CHECK_REFS = r"""
check_refs() {
  if [ ! -r "$secret_file" ]; then
    echo "railguard: cannot read the gate's shared secret ($secret_file); push rejected" >&2
    return 1
  fi
  headers=$(mktemp) || return 1
  answer=$(mktemp) || return 1
  trap 'rm -f "$headers" "$answer"' EXIT
  printf 'Authorization: Bearer %s\n' "$(head -n 1 "$secret_file")" > "$headers"
  zero=0000000000000000000000000000000000000000
  result=0
  while read -r old new ref; do
    [ -n "$ref" ] || continue
    : > "$answer"
    if [ "$new" = "$zero" ]; then
      code=$(curl -sS --max-time "$max_seconds" -H @"$headers" -H "X-Railguard-App: $app" \
        -H "X-Railguard-Ref: $ref" -H "X-Railguard-Old: $old" -H "X-Railguard-New: $new" \
        -H "X-Railguard-Pusher: ${GITEA_PUSHER_NAME:-}" --data-binary '' -o "$answer" -w '%{http_code}' "$url")
    else
      code=$(git archive --format=tar "$new" | curl -sS --max-time "$max_seconds" -H @"$headers" \
        -H "X-Railguard-App: $app" -H "X-Railguard-Ref: $ref" -H "X-Railguard-Old: $old" \
        -H "X-Railguard-New: $new" -H "X-Railguard-Pusher: ${GITEA_PUSHER_NAME:-}" \
        -H "Content-Type: application/x-tar" --data-binary @- -o "$answer" -w '%{http_code}' "$url")
    fi
    verdict=$(head -n 1 "$answer")
    sed '1d' "$answer" >&2
    if [ "$code" != 200 ] || [ "$verdict" != pass ]; then
      [ "$code" = 200 ] || echo "railguard: the gate at $url answered HTTP ${code:-none}; push rejected" >&2
      result=1
    fi
  done
  return $result
}
"""


#: The default secret file as the hook names it: relative to the repository, git's working
#: directory for a bare repository's hooks, so the same name works inside Forgejo's container.
DEFAULT_SECRET_IN_HOOK = f"hooks/{SECRET_FILE_NAME}"


def remote_hook_script(*, url: str, app: str, secret_file: Path | str = DEFAULT_SECRET_IN_HOOK, chain: bool,
                       max_seconds: int = DEFAULT_MAX_SECONDS) -> str:
    """The sh hook; every value baked in is quoted with :func:`shlex.quote`."""
    lines = ["#!/bin/sh", MARKER, "# Asks the railguard gate to test each push before it lands; docs/gate.md.",
             f"url={shlex.quote(url.rstrip('/') + '/api/v1/check')}", f"app={shlex.quote(app)}",
             "# Relative names are the repository's: git runs a bare repository's hooks there.",
             f"secret_file={shlex.quote(str(secret_file))}", f"max_seconds={int(max_seconds)}",
             "umask 077", _CHECK_REFS.strip("\n")]
    if chain:
        lines += chained_lines("check_refs")
    else:
        lines.append("check_refs")
    return "\n".join(lines) + "\n"


@dataclass
class RemoteInstallation:
    path: Path
    secret_file: Path
    secret_written: bool
    chained: Path | None = None


def install_remote_hook(git_dir: Path, *, url: str, app: str, secret: Secret | None,
                        secret_file: Path | None = None) -> RemoteInstallation:
    """Install the sh hook into ``hooks/pre-receive.d/`` (Forgejo) or ``hooks/pre-receive`` (plain git).

    The secret file is written (mode 0600, owned like the repository) only when it does not
    exist yet; an existing pre-receive is kept as ``pre-receive.railguard-chained`` and still
    runs first. Without ``secret_file`` the hook names ``hooks/railguard-gate.secret`` relative to
    the repository; with it, that path as given (where the hook, maybe in a container, sees it).
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--remote {url!r} is not an http(s) URL",
                         hint="Give the gate's base URL, e.g. http://127.0.0.1:8787")
    hooks = hooks_dir(git_dir)
    owner = repository_owner(git_dir)
    ensure_directory(hooks, owner)
    in_hook: Path | str = secret_file.absolute() if secret_file else DEFAULT_SECRET_IN_HOOK
    secret_file = secret_file.absolute() if secret_file else (hooks / SECRET_FILE_NAME).absolute()
    place = hook_place(git_dir, hooks)
    # The secret before the hook: a hook without its secret would reject every push.
    written = _write_secret(secret_file, secret, owner if secret_file.parent == hooks.absolute() else None)
    script = remote_hook_script(url=url, app=app, secret_file=in_hook, chain=place.chained is not None)
    put_hook(place, script, owner=owner)
    return RemoteInstallation(place.path, secret_file, written, place.chained)


def _write_secret(path: Path, secret: Secret | None, owner: Owner | None) -> bool:
    """Write the secret file unless it exists; in the repository's hooks directory it gets the
    repository's owner (the git user runs the hook), elsewhere it stays ours."""
    if os.path.lexists(path):
        return False
    if secret is None:
        raise ConfigError(f"the hook's shared secret file {path} does not exist and no secret is set",
                          hint="Export RAILGUARD_GATE_CHECK_SECRET (the gate's gate.check_secret_env) and install "
                               "again, or give --secret-file with an existing file")
    return write_in_repository(path, (secret.reveal() + "\n").encode("utf-8"), mode=0o600, owner=owner,
                               replace=False)
