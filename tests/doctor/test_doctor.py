"""railguard doctor: each rule on a real repository on disk, the CLI's exit codes, --json, --fix."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from railguard.doctor import RULES, Severity, diagnose

from .conftest import GOOD_DOCKERFILE

ROOT = Path(__file__).resolve().parents[2]


def rules_of(directory: Path) -> list[tuple[str, str]]:
    return [(f.location, f.rule) for f in diagnose(directory).findings]


def only(directory: Path, rule: str):
    found = [f for f in diagnose(directory).findings if f.rule == rule]
    assert len(found) == 1, found
    return found[0]


def dockerfile_with(healthcheck: str) -> str:
    return GOOD_DOCKERFILE.replace('HEALTHCHECK CMD python3 -m railguard.probe "http://127.0.0.1:${PORT}/health"',
                                   healthcheck)


# --- the team's files and the good ones ---------------------------------------------------

def test_the_teams_original_files_show_every_problem_the_plan_names(original_app):
    assert rules_of(original_app) == [
        ("Dockerfile:10", "healthcheck-cannot-fail"),
        ("Dockerfile:10", "healthcheck-ignores-status"),
        ("startup.sh:3", "start-no-exec"),
        (".dockerignore", "dockerignore-missing"),
        ("Dockerfile", "database-not-on-volume"),
        ("startup.sh:2", "start-sleep"),
        ("Dockerfile:3", "debug-tools-in-image"),
    ]


def test_the_teams_original_files_fail_the_command_with_exit_7(run_cli, original_app):
    result = run_cli("doctor", original_app)
    assert result.exit_code == 7
    assert ("Dockerfile:10: error [healthcheck-cannot-fail] HEALTHCHECK ends in `|| exit 0`, so it always reports "
            "healthy") in result.stdout
    assert "    fix: Remove `|| exit 0` (railguard doctor --fix does it)" in result.stdout
    assert result.stdout.splitlines()[-1] == f"{original_app}: 3 errors, 3 warnings, 1 info; 3 fixable with --fix"


def test_the_example_app_has_no_findings(run_cli):
    result = run_cli("doctor", ROOT / "examples" / "tasks-app")
    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, f"{ROOT / 'examples' / 'tasks-app'}: "
                                                                      "no problems found")


def test_good_deploy_files_have_no_findings(make_repo):
    assert rules_of(make_repo()) == []


# --- HEALTHCHECK -------------------------------------------------------------------------

def test_a_missing_healthcheck_is_an_error(make_repo):
    repo = make_repo({"Dockerfile": dockerfile_with("")})
    found = only(repo, "healthcheck-missing")
    assert (found.location, found.severity) == ("Dockerfile", Severity.ERROR)


@pytest.mark.parametrize("healthcheck", ["HEALTHCHECK --interval=5s", "HEALTHCHECK CMD", "HEALTHCHECK CMD []"])
def test_a_healthcheck_without_a_command_counts_as_missing(make_repo, healthcheck):
    found = only(make_repo({"Dockerfile": dockerfile_with(healthcheck)}), "healthcheck-missing")
    assert found.message == "HEALTHCHECK has no command to run (docker build refuses it)"


def test_an_empty_dockerfile_has_no_healthcheck(make_repo):
    assert ("Dockerfile", "healthcheck-missing") in rules_of(make_repo({"Dockerfile": "# nothing yet\n"}))


def test_healthcheck_none_counts_as_missing(make_repo):
    found = only(make_repo({"Dockerfile": dockerfile_with("HEALTHCHECK NONE")}), "healthcheck-missing")
    assert found.location == "Dockerfile:6"


def test_a_healthcheck_in_a_build_stage_does_not_count_for_the_final_image(make_repo):
    build_stage = "FROM python:3.11 AS build\nHEALTHCHECK CMD python3 -m railguard.probe http://127.0.0.1/health\n"
    dockerfile = build_stage + dockerfile_with("")
    assert ("Dockerfile", "healthcheck-missing") in rules_of(make_repo({"Dockerfile": dockerfile}))


@pytest.mark.parametrize(("healthcheck", "tail"), [
    ("HEALTHCHECK CMD curl -f http://127.0.0.1:3000/health || exit 0", "|| exit 0"),
    ("HEALTHCHECK CMD curl -f http://127.0.0.1:3000/health || true", "|| true"),
    ("HEALTHCHECK CMD curl -f http://127.0.0.1:3000/health || :", "|| :"),
    ("HEALTHCHECK CMD curl -f http://127.0.0.1:3000/health; exit 0", "; exit 0"),
    ('HEALTHCHECK CMD ["CMD-SHELL", "curl -f http://127.0.0.1:3000/health || exit 0"]', "|| exit 0"),
])
def test_a_healthcheck_that_cannot_fail_is_an_error(make_repo, healthcheck, tail):
    found = only(make_repo({"Dockerfile": dockerfile_with(healthcheck)}), "healthcheck-cannot-fail")
    assert found.severity is Severity.ERROR
    assert found.message.startswith(f"HEALTHCHECK ends in `{tail}`, so it always reports healthy")


@pytest.mark.parametrize("healthcheck", [
    "HEALTHCHECK CMD curl -fsS http://127.0.0.1:3000/health || exit 1",
    "HEALTHCHECK CMD curl -sf http://127.0.0.1:3000/health || exit",
    "HEALTHCHECK CMD wget -q --spider http://127.0.0.1:3000/health",
    "HEALTHCHECK CMD wget -qO- http://127.0.0.1:3000/health | grep -q ok",
    'HEALTHCHECK CMD ["curl", "--fail", "http://127.0.0.1:3000/health"]',
    "HEALTHCHECK --interval=10s CMD railguard probe http://127.0.0.1:3000/health",
    "HEALTHCHECK CMD bun -e 'fetch(\"http://127.0.0.1:3000/health\").then(r=>process.exit(r.status===200?0:1))'",
])
def test_healthchecks_that_can_fail_pass(make_repo, healthcheck):
    assert rules_of(make_repo({"Dockerfile": dockerfile_with(healthcheck)})) == []


def test_a_healthcheck_continued_over_lines_is_read_as_one_instruction(make_repo):
    dockerfile = dockerfile_with("HEALTHCHECK --interval=30s \\\n    --timeout=5s \\\n"
                                 "    CMD curl -fsS http://127.0.0.1:3000/health \\\n    || exit 0")
    found = only(make_repo({"Dockerfile": dockerfile}), "healthcheck-cannot-fail")
    assert (found.location, found.fixable) == ("Dockerfile:6", True)


@pytest.mark.parametrize(("healthcheck", "message"), [
    ("HEALTHCHECK CMD curl -s http://127.0.0.1:3000/health", "curl without -f/--fail exits 0 on any HTTP answer"),
    ('HEALTHCHECK CMD ["curl", "-s", "http://127.0.0.1:3000/health"]', "curl without -f/--fail"),
    ("HEALTHCHECK CMD curl -fsS http://127.0.0.1:3000/health | cat", "curl's exit status is thrown away"),
    ("HEALTHCHECK CMD wget -qO- http://127.0.0.1:3000/health | tail -1", "wget's exit status is thrown away"),
    ("HEALTHCHECK CMD wget -q http://127.0.0.1:3000/health; echo checked", "the fetch's exit status is thrown away"),
])
def test_a_healthcheck_that_ignores_the_http_status_is_an_error(make_repo, healthcheck, message):
    found = only(make_repo({"Dockerfile": dockerfile_with(healthcheck)}), "healthcheck-ignores-status")
    assert found.severity is Severity.ERROR and found.message.startswith(message)


def test_a_port_only_healthcheck_is_a_warning(make_repo):
    found = only(make_repo({"Dockerfile": dockerfile_with("HEALTHCHECK CMD nc -z 127.0.0.1 3000")}),
                 "healthcheck-port-only")
    assert found.severity is Severity.WARNING


# --- start script -------------------------------------------------------------------------

def test_a_sleep_before_the_app_starts_is_a_fixable_warning(make_repo):
    found = only(make_repo({"startup.sh": "#!/bin/sh\nset -eu\nsleep 10\nexec python3 app.py\n"}), "start-sleep")
    assert (found.location, found.severity, found.fixable) == ("startup.sh:3", Severity.WARNING, True)


def test_a_sleep_chained_before_the_app_is_reported_but_not_fixed(make_repo):
    found = only(make_repo({"startup.sh": "#!/bin/sh\nsleep 10 && exec python3 app.py\n"}), "start-sleep")
    assert (found.location, found.fixable) == ("startup.sh:2", False)


@pytest.mark.parametrize("last_line", ["python3 app.py", "python3 app.py &\nwait"])
def test_a_start_script_that_does_not_exec_the_app_is_an_error(make_repo, last_line):
    found = only(make_repo({"startup.sh": f"#!/bin/sh\n{last_line}\n"}), "start-no-exec")
    assert found.severity is Severity.ERROR and "SIGTERM from docker stop never reaches the app" in found.message


@pytest.mark.parametrize("script", [
    "#!/bin/sh\ncd /app && exec python3 app.py\n",
    "#!/bin/sh\npython3 app.py &\nchild=$!\ntrap 'kill -TERM $child' TERM INT\nwait $child\n",
    "#!/bin/sh\n# start\nexport A=1\nexec env MODE=prod \\\n  python3 app.py\n",
])
def test_exec_in_any_usual_spelling_passes(make_repo, script):
    assert rules_of(make_repo({"startup.sh": script})) == []


def test_the_start_script_is_found_through_cmd_and_copy(make_repo):
    dockerfile = GOOD_DOCKERFILE.replace("COPY . .", "COPY deploy/run.sh /usr/local/bin/run.sh").replace(
        'CMD ["./startup.sh"]', 'CMD ["/usr/local/bin/run.sh"]')
    repo = make_repo({"Dockerfile": dockerfile, "startup.sh": None, "deploy/run.sh": "#!/bin/sh\npython3 app.py\n"})
    assert rules_of(repo) == [("deploy/run.sh:2", "start-no-exec")]


def test_a_shell_form_cmd_with_several_commands_does_not_forward_signals(make_repo):
    dockerfile = GOOD_DOCKERFILE.replace('CMD ["./startup.sh"]', "CMD sleep 5 && python3 app.py")
    assert rules_of(make_repo({"Dockerfile": dockerfile, "startup.sh": None})) == [
        ("Dockerfile:7", "start-no-exec"), ("Dockerfile:7", "start-sleep")]


# --- .dockerignore ------------------------------------------------------------------------

def test_a_missing_dockerignore_is_a_fixable_warning(make_repo):
    found = only(make_repo({".dockerignore": None}), "dockerignore-missing")
    assert (found.severity, found.fixable) == (Severity.WARNING, True)


@pytest.mark.parametrize(("content", "missing"), [
    ("node_modules\n.git\n", "data, backups"),
    ("*\n!src\n!data\n", "data"),
    ("**/node_modules\n/.git/\n./data\nbackups/\n!backups\n", "backups"),
])
def test_a_dockerignore_that_lets_data_through_is_weak(make_repo, content, missing):
    found = only(make_repo({".dockerignore": content}), "dockerignore-weak")
    assert found.message == f".dockerignore lets {missing} into the build context"


def test_an_allow_list_dockerignore_is_strong(make_repo):
    assert rules_of(make_repo({".dockerignore": "# only what the image needs\n*\n!app.py\n!startup.sh\n"})) == []


# --- image contents, PORT, volume ------------------------------------------------------------

def test_curl_and_netcat_in_the_image_are_info_and_sqlite3_is_kept(make_repo):
    install = ("RUN apt-get update && \\\n    apt-get install -y \\\n"
               "    # tools for debugging\n    curl netcat-openbsd sqlite3\nCOPY . .")
    dockerfile = GOOD_DOCKERFILE.replace("COPY . .", install)
    found = only(make_repo({"Dockerfile": dockerfile}), "debug-tools-in-image")
    assert (found.location, found.severity) == ("Dockerfile:3", Severity.INFO)
    assert found.message.startswith("debugging tools in the image: curl, netcat ")
    sqlite_only = GOOD_DOCKERFILE.replace("COPY . .", "RUN apt-get install -y sqlite3\nCOPY . .")
    assert rules_of(make_repo({"Dockerfile": sqlite_only})) == []


@pytest.mark.parametrize("script", [
    "#!/bin/sh\nexec python3 app.py --port 8080\n",
    "#!/bin/sh\nexec python3 app.py --port=8080\n",
    "#!/bin/sh\nPORT=8080 exec python3 app.py\n",
    "#!/bin/sh\nexport PORT=8080\nexec python3 app.py\n",
])
def test_a_port_fixed_in_the_start_script_is_a_warning(make_repo, script):
    found = only(make_repo({"startup.sh": script}), "port-hard-coded")
    assert found.severity is Severity.WARNING and found.message.startswith("port 8080 is fixed")


def test_a_port_fixed_in_the_app_entry_file_is_found(make_repo):
    repo = make_repo({"startup.sh": "#!/bin/sh\nexec bun run index.ts\n",
                      "index.ts": "// server\nBun.serve({ port: 3000, fetch: handle });\n"})
    found = only(repo, "port-hard-coded")
    assert (found.location, found.message) == ("index.ts:2", "port 3000 is fixed in the code instead of read from PORT")


def test_the_teams_entry_file_reads_port_from_the_environment(original_app):
    assert "port-hard-coded" not in [rule for _, rule in rules_of(original_app)]


def test_a_database_outside_every_volume_is_a_warning(make_repo):
    repo = make_repo({"railguard.toml": '[apps.tasks]\ndatabase = "/srv/db/tasks.db"\n'})
    found = only(repo, "database-not-on-volume")
    assert found.message.startswith("the database directory /srv/db (railguard.toml) is not a VOLUME")
    env = GOOD_DOCKERFILE.replace("ENV PORT=3000", "ENV PORT=3000 DB_PATH=/var/lib/app/tasks.db")
    assert only(make_repo({"railguard.toml": None, "Dockerfile": env}), "database-not-on-volume").message.startswith(
        "the database directory /var/lib/app (ENV DB_PATH)")


# --- captain-definition ------------------------------------------------------------------

@pytest.mark.parametrize(("content", "location", "message"), [
    ('{\n  "schemaVersion": 2,\n  "dockerfilePath": "./Dockerfile",\n}\n', "captain-definition:4",
     "not valid JSON: Expecting property name enclosed in double quotes (line 4, column 1)"),
    ('{"schemaVersion": 1, "dockerfilePath": "./Dockerfile"}', "captain-definition:1",
     "schemaVersion must be 2, got 1"),
    ('{"schemaVersion": 2}', "captain-definition:1",
     "needs exactly one of templateId, imageName, dockerfilePath, dockerfileLines; found none"),
    ('{"schemaVersion": 2, "dockerfilePath": "./Dockerfile", "imageName": "x"}', "captain-definition:1",
     "needs exactly one of templateId, imageName, dockerfilePath, dockerfileLines; found imageName, dockerfilePath"),
    ('{"schemaVersion": 2,\n "dockerfilePath": "./docker/Dockerfile"}', "captain-definition:2",
     "dockerfilePath './docker/Dockerfile' does not exist (paths are relative to the project root)"),
    ('["schemaVersion", 2]', "captain-definition:1", "the top level must be a JSON object"),
])
def test_an_invalid_captain_definition_is_an_error(make_repo, content, location, message):
    found = only(make_repo({"captain-definition": content}), "captain-definition-invalid")
    assert (found.location, found.severity, found.message) == (location, Severity.ERROR, message)


def test_a_missing_captain_definition_is_info(make_repo):
    found = only(make_repo({"captain-definition": None}), "captain-definition-missing")
    assert found.severity is Severity.INFO


def test_dockerfile_lines_in_captain_definition_are_checked_too(make_repo):
    captain = json.dumps({"schemaVersion": 2, "dockerfileLines": [
        "FROM python:3.11-slim", "VOLUME /app/data", "HEALTHCHECK CMD curl -f http://127.0.0.1:3000/health || true",
        'CMD ["./startup.sh"]']})
    repo = make_repo({"captain-definition": captain, "Dockerfile": None})
    assert rules_of(repo) == [("captain-definition (dockerfileLines)", "healthcheck-cannot-fail")]


def test_a_prebuilt_image_needs_no_dockerfile(make_repo):
    repo = make_repo({"captain-definition": '{"schemaVersion": 2, "imageName": "nginx:1"}', "Dockerfile": None})
    assert rules_of(repo) == []


def test_no_dockerfile_at_all_is_an_error(make_repo):
    assert ("Dockerfile", "dockerfile-missing") in rules_of(make_repo({"Dockerfile": None}))


# --- bad input: no tracebacks -----------------------------------------------------------

@pytest.mark.parametrize(("name", "content", "message"), [
    ("Dockerfile", b"\x7fELF\x02\x01\x01\x00\x00\x00", "cannot read Dockerfile: binary content (NUL bytes)"),
    ("startup.sh", b"#!/bin/sh\nexec caf\xe9\n", "cannot read startup.sh: not UTF-8 text (byte 18)"),
    ("captain-definition", b"\xff\xfe{\x00}\x00", "cannot read captain-definition: binary content (NUL bytes)"),
])
def test_binary_or_undecodable_files_are_findings_not_tracebacks(run_cli, make_repo, name, content, message):
    repo = make_repo({name: content})
    found = only(repo, "file-unreadable")
    assert (found.file, found.message) == (name, message)
    assert run_cli("doctor", repo).exit_code == 7


def test_a_directory_where_a_file_should_be_is_a_finding(make_repo):
    repo = make_repo({".dockerignore": None})
    (repo / ".dockerignore").mkdir()
    found = only(repo, "file-unreadable")
    assert found.message == "cannot read .dockerignore: .dockerignore is not a regular file"


def test_an_unreadable_file_is_a_finding(make_repo, monkeypatch):
    repo = make_repo()
    real_read = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path.name == "Dockerfile":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    # Tests run as root, which reads files whatever their mode; the error the OS would give is simulated.
    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert only(repo, "file-unreadable").message == "cannot read Dockerfile: Permission denied"


def test_a_missing_directory_is_not_found_with_a_hint(run_cli, tmp_path):
    result = run_cli("doctor", tmp_path / "nowhere")
    assert result.exit_code == 6
    assert result.stderr == (f"error: directory {tmp_path / 'nowhere'} does not exist\n"
                             "hint: Give the repository's root directory: railguard doctor PATH\n")


def test_a_file_instead_of_a_directory_is_not_found(run_cli, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    result = run_cli("doctor", tmp_path / "Dockerfile")
    assert result.exit_code == 6 and "is not a directory" in result.stderr


# --- --json and --fix -------------------------------------------------------------------

def test_json_lists_every_finding_with_location_rule_severity_and_hint(run_cli, original_app):
    result = run_cli("doctor", original_app, "--json")
    assert result.exit_code == 7
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["counts"] == {"error": 3, "warning": 3, "info": 1}
    assert document["findings"][0] == {
        "file": "Dockerfile", "line": 10, "rule": "healthcheck-cannot-fail", "severity": "error",
        "message": "HEALTHCHECK ends in `|| exit 0`, so it always reports healthy: Docker never marks the container "
                   "unhealthy and Swarm keeps a broken app in service",
        "hint": "Remove `|| exit 0` (railguard doctor --fix does it)", "fixable": True}
    assert document["fixed"] == []


def test_json_for_a_missing_directory_is_one_document(run_cli, tmp_path):
    result = run_cli("doctor", tmp_path / "nowhere", "--json")
    assert result.exit_code == 6
    assert json.loads(result.stdout)["error"] == f"directory {tmp_path / 'nowhere'} does not exist"


def test_fix_repairs_the_safe_problems_shows_the_diff_and_reports_the_rest(run_cli, original_app):
    result = run_cli("doctor", original_app, "--fix")
    assert "-  CMD curl -s http://localhost:${PORT:-3000}/health || exit 0\n" \
           "+  CMD curl -s http://localhost:${PORT:-3000}/health\n" in result.stdout
    assert "--- /dev/null\n+++ b/.dockerignore\n" in result.stdout
    assert "--- a/startup.sh\n+++ b/startup.sh\n@@ -1,3 +1,2 @@\n #!/bin/sh\n-sleep 10\n bun run index.ts\n" \
        in result.stdout
    assert "fixed 3 file(s): Dockerfile, startup.sh, .dockerignore" in result.stdout
    # What needs a person stays reported, and still fails the check.
    assert result.exit_code == 7
    assert rules_of(original_app) == [
        ("Dockerfile:10", "healthcheck-ignores-status"),
        ("startup.sh:2", "start-no-exec"),
        ("Dockerfile", "database-not-on-volume"),
        ("Dockerfile:3", "debug-tools-in-image"),
    ]
    assert os.access(original_app / "startup.sh", os.X_OK)
    assert (original_app / "startup.sh").read_text() == "#!/bin/sh\nbun run index.ts\n"
    ignored = (original_app / ".dockerignore").read_text().splitlines()
    assert {"node_modules", ".git", "data", "backups"} <= set(ignored)


def test_fix_sets_the_mode_on_the_file_it_writes_never_through_a_name_swapped_for_a_link(make_repo, tmp_path,
                                                                                         monkeypatch):
    """The repository can be another user's: once the fixed start script has its name, that
    user can swap the name for a link to a file of ours. Nothing after the write may follow it."""
    import railguard.doctor.fix as fix

    repo = make_repo({"startup.sh": "#!/bin/sh\nset -eu\nsleep 10\nexec python3 app.py\n"})
    os.chmod(repo / "startup.sh", 0o750)
    victim = tmp_path / "victim"
    victim.write_text("ours\n")
    os.chmod(victim, 0o600)
    written_modes = {}

    def write_then_swap(path: Path, data: bytes, *, mode: int) -> None:
        real_write(path, data, mode=mode)
        written_modes[path.name] = os.stat(path).st_mode & 0o777
        if path.name == "startup.sh":  # the swap, deterministic: right after the rename
            swapped = path.with_name("swapped")
            swapped.symlink_to(victim)
            os.replace(swapped, path)

    real_write = fix.write_bytes_atomic
    monkeypatch.setattr(fix, "write_bytes_atomic", write_then_swap)
    diagnose(repo, fix=True)
    # The fixed script already had its mode when it got its name (executable, as before) ...
    assert written_modes["startup.sh"] == 0o750
    # ... and the file the swapped name points to was not touched.
    assert victim.stat().st_mode & 0o777 == 0o600
    assert victim.read_text() == "ours\n"


def test_fix_removes_a_tail_on_the_last_line_of_a_continued_healthcheck(make_repo):
    dockerfile = dockerfile_with("HEALTHCHECK --interval=30s \\\n    CMD curl -fsS http://127.0.0.1:3000/health \\\n"
                                 "    || exit 0")
    repo = make_repo({"Dockerfile": dockerfile, ".dockerignore": "node_modules\n"})
    report = diagnose(repo, fix=True)
    assert [edit.name for edit in report.edits] == ["Dockerfile", ".dockerignore"]
    # The emptied continuation line goes, and so does the backslash before it: an empty
    # continuation line would join CMD into the HEALTHCHECK.
    assert "HEALTHCHECK --interval=30s \\\n    CMD curl -fsS http://127.0.0.1:3000/health\nCMD" \
        in (repo / "Dockerfile").read_text()
    assert (repo / ".dockerignore").read_text() == "node_modules\n.git\ndata\nbackups\n"
    assert report.findings == []


def test_fix_on_clean_files_changes_nothing(run_cli, make_repo):
    repo = make_repo()
    before = {p.name: p.read_bytes() for p in repo.iterdir()}
    result = run_cli("doctor", repo, "--fix")
    assert (result.exit_code, result.stdout) == (0, f"{repo}: no problems found\n")
    assert {p.name: p.read_bytes() for p in repo.iterdir()} == before


# --- documentation ----------------------------------------------------------------------

def test_every_rule_is_in_the_docs_table_with_its_severity():
    table = (ROOT / "docs" / "doctor.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (error|warning|info) \|", table, re.MULTILINE))
    assert rows == {rule.id: rule.severity.value for rule in RULES.values()}


def test_the_worked_example_in_the_docs_is_the_real_output(run_cli):
    text = (ROOT / "docs" / "doctor.md").read_text()
    block = text.split("```console\n", 1)[1].split("```", 1)[0]
    command, *expected = block.splitlines()
    relative = command.removeprefix("$ railguard doctor ")
    result = run_cli("doctor", ROOT / relative)
    assert result.stdout.replace(str(ROOT / relative), relative).splitlines() == expected


def test_fix_with_json_carries_the_diffs(run_cli, original_app):
    result = run_cli("doctor", original_app, "--fix", "--json")
    document = json.loads(result.stdout)
    assert [(item["file"], item["created"]) for item in document["fixed"]] == [
        ("Dockerfile", False), ("startup.sh", False), (".dockerignore", True)]
    assert "-sleep 10\n" in document["fixed"][1]["diff"]
    assert document["counts"] == {"error": 2, "warning": 1, "info": 1}


# --- the deployed commit --------------------------------------------------------------------

SMOKED_TOML = '[apps.tasks]\ndatabase = "/app/data/tasks.db"\nurl = "http://127.0.0.1:3000"\n'


def test_a_dockerfile_without_the_commit_build_arg_is_an_error_when_the_smoke_check_expects_it(make_repo):
    found = only(make_repo({"railguard.toml": SMOKED_TOML}), "commit-not-in-image")
    assert (found.location, found.severity, found.fixable) == ("Dockerfile", Severity.ERROR, True)
    assert found.message.startswith("CapRover passes the deployed commit only as the build arg "
                                    "CAPROVER_GIT_COMMIT_SHA, and the final stage lacks its ARG and ENV")


def test_without_a_smoke_url_the_commit_build_arg_is_not_required(make_repo):
    assert "commit-not-in-image" not in [rule for _, rule in rules_of(make_repo())]


def test_an_arg_in_an_earlier_stage_does_not_reach_the_final_one(make_repo):
    staged = ("FROM python:3.11-slim AS build\nARG CAPROVER_GIT_COMMIT_SHA\n"
              "ENV CAPROVER_GIT_COMMIT_SHA=${CAPROVER_GIT_COMMIT_SHA}\n" + GOOD_DOCKERFILE)
    assert only(make_repo({"railguard.toml": SMOKED_TOML, "Dockerfile": staged}), "commit-not-in-image")


def test_fix_adds_arg_and_env_before_the_healthcheck_and_the_finding_goes(run_cli, make_repo):
    repo = make_repo({"railguard.toml": SMOKED_TOML})
    result = run_cli("doctor", repo, "--fix")
    assert result.exit_code == 0, result.stdout
    text = (repo / "Dockerfile").read_text()
    assert text.index("ARG CAPROVER_GIT_COMMIT_SHA\nENV CAPROVER_GIT_COMMIT_SHA=${CAPROVER_GIT_COMMIT_SHA}\n") < \
        text.index("HEALTHCHECK")
    assert "commit-not-in-image" not in [rule for _, rule in rules_of(repo)]


def test_the_files_railguard_init_writes_carry_the_commit(run_cli, tmp_path):
    for runtime in ("bun", "node", "python"):
        target = tmp_path / runtime
        target.mkdir()
        assert run_cli("init", "--runtime", runtime, target).exit_code == 0
        assert 'url = "http://127.0.0.1:3000"' in (target / "railguard.toml").read_text()
        assert "commit-not-in-image" not in [rule for _, rule in rules_of(target)], runtime
