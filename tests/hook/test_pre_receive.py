"""The pre-receive hook with real git: pushes over the local transport to a bare repository."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from railguard.deploy.hook.run import Decision, RefUpdate, decide, parse_updates
from railguard.errors import UsageError

OLD, NEW = "1" * 40, "2" * 40
ZERO = "0" * 40


# --- the pure core ---------------------------------------------------------------------------------

def test_decide_tests_protected_branches_and_passes_everything_else():
    updates = [RefUpdate(OLD, NEW, "refs/heads/main"), RefUpdate(OLD, NEW, "refs/heads/feature"),
               RefUpdate(ZERO, NEW, "refs/tags/v1.0.0"), RefUpdate(OLD, NEW, "refs/heads/release/1.x"),
               RefUpdate(OLD, ZERO, "refs/heads/main")]
    decisions = decide(updates, ["main", "release/*"], allow_delete=False)
    assert [(d.update.ref, d.action) for d in decisions] == [
        ("refs/heads/main", "test"), ("refs/heads/feature", "pass"), ("refs/tags/v1.0.0", "pass"),
        ("refs/heads/release/1.x", "test"), ("refs/heads/main", "reject")]


def test_deleting_a_protected_branch_can_be_allowed_by_config():
    [decision] = decide([RefUpdate(OLD, ZERO, "refs/heads/main")], ["main"], allow_delete=True)
    assert decision == Decision(RefUpdate(OLD, ZERO, "refs/heads/main"), "pass",
                                "deleting a protected branch is allowed by config")


def test_parse_updates_keeps_ref_names_verbatim_and_refuses_garbage():
    text = f"{OLD} {NEW} refs/heads/a;b$(c)\n\n{ZERO} {NEW} refs/heads/main\n"
    assert [u.ref for u in parse_updates(text)] == ["refs/heads/a;b$(c)", "refs/heads/main"]
    with pytest.raises(UsageError, match="is not '<old> <new> <ref>'"):
        parse_updates("hello world\n")


# --- real pushes -------------------------------------------------------------------------------------

def test_a_commit_whose_tests_pass_is_accepted(hooked):
    sha = hooked.commit("works", {"index.ts": "console.log('v2')\n"})
    push = hooked.push("main")
    assert push.returncode == 0, push.output
    assert hooked.head("main") == sha
    assert "remote: railguard: testing refs/heads/main at " + sha[:12] + ": sh run-tests.sh" in push.output
    assert "remote: railguard: passed: refs/heads/main: `sh run-tests.sh` passed" in push.output


def test_a_commit_whose_tests_fail_is_rejected_and_the_branch_does_not_move(hooked):
    before = hooked.head("main")
    hooked.commit("breaks a test", {"FAIL": "1\n"})
    push = hooked.push("main")
    assert push.returncode != 0
    assert hooked.head("main") == before
    assert "remote: railguard:   | tasks.test.ts: expected 3 tasks, got 2" in push.output
    assert "remote: railguard:   | 1 fail" in push.output
    assert ("remote: railguard: push rejected: refs/heads/main: `sh run-tests.sh` failed with exit code 1"
            in push.output)
    assert "pre-receive hook declined" in push.output


def test_a_hanging_test_suite_hits_the_timeout_and_is_rejected(server, run_cli, write_hook_config):
    config = write_hook_config(test_timeout="2s")
    assert run_cli("--config", config, "hook", "install", server.bare).exit_code == 0
    before = server.head("main")
    server.commit("hangs", {"run-tests.sh": "echo 'waiting for a server that never answers'\nsleep 60\n"})
    push = server.push("main")
    assert push.returncode != 0 and server.head("main") == before
    assert "did not finish within 2s and was stopped" in push.output
    assert "  | waiting for a server that never answers" in push.output


def test_a_push_to_another_branch_is_not_tested(hooked):
    subprocess.run(["git", "switch", "--quiet", "-c", "feature"], cwd=hooked.work, check=True)
    sha = hooked.commit("work in progress", {"FAIL": "1\n"})
    push = hooked.push("feature")
    assert push.returncode == 0, push.output
    assert hooked.head("feature") == sha
    assert "testing" not in push.output


def test_ref_names_with_shell_metacharacters_are_only_data(server, run_cli, write_hook_config, tmp_path):
    weird = "evil;touch${IFS}pwned1;$(touch${IFS}pwned2)`touch${IFS}pwned3`"
    config = write_hook_config(protected_branches=["main", "evil*"])
    assert run_cli("--config", config, "hook", "install", server.bare).exit_code == 0
    subprocess.run(["git", "switch", "--quiet", "-c", weird], cwd=server.work, check=True)
    failing = server.commit("fails on the weird branch", {"FAIL": "1\n"})
    rejected = server.push(weird)
    assert rejected.returncode != 0 and server.head(weird) is None
    assert "push rejected: refs/heads/" + weird in rejected.output
    subprocess.run(["git", "rm", "--quiet", "FAIL"], cwd=server.work, check=True)
    fixed = server.commit("fixed")
    accepted = server.push(weird)
    assert accepted.returncode == 0, accepted.output
    assert server.head(weird) == fixed != failing
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))


def test_git_itself_refuses_branch_names_with_spaces_so_they_never_reach_the_hook(server):
    done = subprocess.run(["git", "check-ref-format", "--branch", "a b"], cwd=server.work, capture_output=True)
    assert done.returncode != 0


def test_several_refs_in_one_push_are_all_checked(server, run_cli, write_hook_config):
    config = write_hook_config(protected_branches=["main", "release"])
    assert run_cli("--config", config, "hook", "install", server.bare).exit_code == 0
    main_before = server.head("main")
    server.commit("passing on main", {"index.ts": "console.log('v2')\n"})
    subprocess.run(["git", "branch", "--quiet", "release", "HEAD"], cwd=server.work, check=True)
    subprocess.run(["git", "switch", "--quiet", "release"], cwd=server.work, check=True)
    server.commit("failing on release", {"FAIL": "1\n"})
    push = server.push("main", "release")
    assert push.returncode != 0
    assert "passed: refs/heads/main" in push.output and "FAILED: refs/heads/release" in push.output
    # pre-receive is all or nothing: the passing ref does not land either.
    assert server.head("main") == main_before and server.head("release") is None


def test_deleting_a_protected_branch_is_rejected(server, run_cli, write_hook_config):
    subprocess.run(["git", "branch", "--quiet", "release"], cwd=server.work, check=True)
    assert server.push("release").returncode == 0
    config = write_hook_config(protected_branches=["main", "release"])
    assert run_cli("--config", config, "hook", "install", server.bare).exit_code == 0
    push = server.push(":release")
    assert push.returncode != 0 and server.head("release") is not None
    assert "push rejected: refs/heads/release: deleting a protected branch is not allowed" in push.output


def test_the_suite_gets_the_gates_clean_environment_and_only_the_variables_config_names(
        hooked, write_hook_config, tmp_path):
    # One rule for every pushed suite (deploy/pipeline.py): the pusher's (or Forgejo's) other
    # variables stay out, as in the gate. No sandbox, so the suite can report through a file.
    write_hook_config(test_isolation="none", test_pass_env=["HOOK_SEEN"])
    seen = tmp_path / "seen"
    hooked.commit("reports its environment", {"run-tests.sh": 'env | sort > "$HOOK_SEEN.env"\n'})
    push = hooked.push("main", env={"HOOK_SEEN": str(seen), "SERVER_ONLY_SETTING": "not for pushed code"})
    assert push.returncode == 0, push.output
    names = {line.split("=", 1)[0] for line in Path(f"{seen}.env").read_text().splitlines() if "=" in line}
    assert "SERVER_ONLY_SETTING" not in names
    assert not {name for name in names if name.startswith("GIT_")}
    assert {"PATH", "HOME", "TMPDIR", "CI", "RAILGUARD_COMMIT", "HOOK_SEEN"} <= names


def test_the_suite_runs_in_a_fresh_copy_of_the_commit_without_git_variables(hooked, write_hook_config, tmp_path):
    # The suite reports through files outside its tree, which a sandbox hides (test_isolation.py
    # checks the same inside the sandbox): this test of the directory runs without one.
    # HOOK_SEEN reaches the suite only because the configuration names it (deploy/pipeline.py).
    write_hook_config(test_isolation="none", test_pass_env=["HOOK_SEEN"])
    seen = tmp_path / "seen"
    hooked.commit("reports its environment", {"run-tests.sh": (
        'pwd > "$HOOK_SEEN.pwd"\n'
        'env | grep "^GIT_" > "$HOOK_SEEN.git-env" || true\n'
        'ls > "$HOOK_SEEN.files"\n'
        'git rev-parse --git-dir > "$HOOK_SEEN.git-dir" 2>&1 || true\n')})
    push = hooked.push("main", env={"HOOK_SEEN": str(seen)})
    assert push.returncode == 0, push.output
    tree = Path(Path(f"{seen}.pwd").read_text().strip())
    assert tree.name == "tree" and tree.parent.name.startswith("railguard-hook-") and not tree.parent.exists()
    assert Path(f"{seen}.git-env").read_text() == ""
    assert Path(f"{seen}.files").read_text().split() == ["index.ts", "run-tests.sh"]
    assert "not a git repository" in Path(f"{seen}.git-dir").read_text()


def test_two_pushes_at_the_same_time_each_get_their_own_directory(server, run_cli, write_hook_config, tmp_path):
    # The two suites meet through a directory outside their trees: no sandbox for this one.
    config = write_hook_config(protected_branches=["main", "release"], test_isolation="none")
    assert run_cli("--config", config, "hook", "install", server.bare).exit_code == 0
    log = tmp_path / "dirs.log"
    barrier_dir = tmp_path / "arrivals"
    barrier_dir.mkdir()
    suite = (f'pwd >> "{log}"\n'
             f'touch "{barrier_dir}/$$"\n'
             # Wait (bounded) until both suites are running, so they overlap for real.
             f'i=0; while [ "$(ls "{barrier_dir}" | wc -l)" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n'
             'cat index.ts\n')
    other = server.clone("other")
    server.commit("main change", {"run-tests.sh": suite, "index.ts": "main\n"})
    subprocess.run(["git", "switch", "--quiet", "-c", "release"], cwd=other, check=True)
    server.commit("release change", {"run-tests.sh": suite, "index.ts": "release\n"}, work=other)
    results = {}
    threads = [threading.Thread(target=lambda n=n, w=w, r=r: results.__setitem__(n, server.push(r, work=w)))
               for n, w, r in (("main", server.work, "main"), ("release", other, "release"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["main"].returncode == 0, results["main"].output
    assert results["release"].returncode == 0, results["release"].output
    directories = log.read_text().split()
    assert len(directories) == 2 and len(set(directories)) == 2
    assert len(list(barrier_dir.iterdir())) == 2


def test_railguard_hook_run_checks_ref_lines_given_by_hand(server, run_cli, monkeypatch):
    """The CLI form of the check (what an admin runs to try the hook), on commits already in the repo."""
    subprocess.run(["git", "switch", "--quiet", "-c", "candidate"], cwd=server.work, check=True)
    good = server.commit("fine", {"index.ts": "v2\n"})
    bad = server.commit("broken", {"FAIL": "1\n"})
    assert server.push("candidate").returncode == 0
    base = server.head("main")
    monkeypatch.chdir(server.bare)
    accepted = run_cli("--config", server.config, "hook", "run", input=f"{base} {good} refs/heads/main\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert "railguard: passed: refs/heads/main" in accepted.stderr
    rejected = run_cli("--config", server.config, "hook", "run", input=f"{base} {bad} refs/heads/main\n")
    assert rejected.exit_code == 7
    assert "railguard: push rejected: refs/heads/main: `sh run-tests.sh` failed with exit code 1" in rejected.stderr
    assert server.head("main") == base


def test_railguard_hook_run_json_gives_the_verdict_of_each_ref(server, run_cli, monkeypatch):
    subprocess.run(["git", "switch", "--quiet", "-c", "candidate"], cwd=server.work, check=True)
    bad = server.commit("broken", {"FAIL": "1\n"})
    assert server.push("candidate").returncode == 0
    base = server.head("main")
    monkeypatch.chdir(server.bare)
    rejected = run_cli("hook", "run", "--config", server.config, "--json", input=f"{base} {bad} refs/heads/main\n")
    assert rejected.exit_code == 7
    document = json.loads(rejected.stdout)
    assert document["ok"] is False and document["accepted"] is False
    assert [(r["ref"], r["accepted"]) for r in document["refs"]] == [("refs/heads/main", False)]
    assert "`sh run-tests.sh` failed with exit code 1" in document["refs"][0]["summary"]
