"""The pure core: signatures, parsing and what each Forgejo delivery leads to."""

from __future__ import annotations

import json

import pytest

from fakes.forgejo import form_delivery, forgejo_json, push_payload, signed_headers
from gate.conftest import WEBHOOK_SECRET
from railguard.config import GateAppSettings
from railguard.gate.webhook import (
    MalformedPayload,
    SignatureInvalid,
    decide,
    normalise_clone_url,
    parse_delivery,
    signed_payload,
    verify_signature,
)

SECRET = "s3cret"
A, B = "a" * 40, "b" * 40
CLONE = "https://git.example.test/dev/tasks.git"
APPS = {"tasks": GateAppSettings(repository="dev/tasks", clone_url=CLONE)}
TAGGED = {"tasks": GateAppSettings(repository="dev/tasks", clone_url=CLONE, deploy_tags=True)}


def _body(**fields: object) -> bytes:
    payload = push_payload(ref="refs/heads/main", before=A, after=B, clone_url=CLONE)
    payload.update(fields)
    return json.dumps(payload).encode()


def _verdict(body: bytes, apps: dict = APPS, event: str = "push"):  # type: ignore[no-untyped-def]
    delivery = parse_delivery(body, signed_headers(body, SECRET, event=event))
    return decide(delivery, apps, tag_prefix={"tasks": "v"})


@pytest.mark.parametrize("which", ["forgejo", "gitea", "hub"])
def test_each_signature_header_verifies_the_raw_body(which: str) -> None:
    body = _body()
    assert verify_signature(body, signed_headers(body, SECRET, which=which), SECRET.encode()).startswith("x-")


@pytest.mark.parametrize("tamper", [
    lambda h, b: ({**h, "X-Forgejo-Signature": "0" * 64}, b),
    lambda h, b: (h, b + b" "),  # a re-serialised body no longer matches: the raw bytes are signed
    lambda h, b: ({k: v for k, v in h.items() if "Signature" not in k}, b),
    lambda h, b: ({**h, "X-Forgejo-Signature": ""}, b),  # what Forgejo sends without a secret... and no other
])
def test_a_wrong_missing_or_empty_signature_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    body = _body()
    headers, sent = tamper(signed_headers(body, SECRET, which="forgejo"), body)
    with pytest.raises(SignatureInvalid):
        verify_signature(sent, headers, SECRET.encode())


def test_a_hub_signature_without_its_prefix_is_refused() -> None:
    body = _body()
    bare = signed_headers(body, SECRET, which="forgejo")["X-Forgejo-Signature"]
    with pytest.raises(SignatureInvalid, match="does not start with 'sha256='"):
        verify_signature(body, {"X-Hub-Signature-256": bare}, SECRET.encode())


def test_a_push_to_the_configured_branch_is_queued_with_what_the_run_page_shows() -> None:
    verdict = _verdict(_body(head_commit={"id": B, "message": "Add due dates\n\nlong text"}))
    assert verdict.action == "queue" and verdict.push is not None
    assert (verdict.push.app, verdict.push.ref, verdict.push.after, verdict.push.title, verdict.push.pusher) == (
        "tasks", "refs/heads/main", B, "Add due dates", "dev")


@pytest.mark.parametrize(("fields", "event", "apps", "reason"), [
    ({}, "issues", APPS, "event 'issues' is not a push"),
    ({"ref": "refs/heads/feature"}, "push", APPS, "push to 'feature', not 'main'"),
    ({"ref": "refs/tags/v1.2.0", "before": "0" * 40}, "push", APPS,
     "tag push 'v1.2.0': tasks deploys the branch 'main'"),
    ({"after": "0" * 40}, "push", APPS, "refs/heads/main was deleted"),
    ({"ref": "refs/heads/main"}, "push", TAGGED, "branch push to 'main': tasks deploys tags"),
    ({"ref": "refs/tags/nightly"}, "push", TAGGED, "tag 'nightly' does not start with 'v'"),
    ({"ref": "refs/notes/commits"}, "push", APPS, "refs/notes/commits is neither a branch nor a tag"),
])
def test_deliveries_the_gate_ignores_say_why(fields: dict, event: str, apps: dict, reason: str) -> None:
    verdict = _verdict(_body(**fields), apps, event)
    assert (verdict.action, verdict.reason) == ("ignore", reason)


def test_a_tag_push_is_queued_when_the_app_deploys_by_tag() -> None:
    verdict = _verdict(_body(ref="refs/tags/v1.2.0", before="0" * 40), TAGGED)
    assert verdict.action == "queue" and verdict.push is not None and verdict.push.ref == "refs/tags/v1.2.0"


def test_a_push_from_another_repository_is_ignored_even_with_a_valid_signature() -> None:
    payload = push_payload(ref="refs/heads/main", before=A, after=B, clone_url="https://evil.example/dev/tasks.git")
    verdict = _verdict(json.dumps(payload).encode())
    assert verdict.action == "ignore" and "no gate app is configured" in verdict.reason


def test_clone_urls_match_without_case_trailing_slash_or_dot_git() -> None:
    assert normalise_clone_url("HTTPS://Git.Example.test/dev/tasks/") == normalise_clone_url(CLONE)
    assert normalise_clone_url("file:///srv/Tasks.git") != normalise_clone_url("file:///srv/tasks.git")


@pytest.mark.parametrize(("body", "message"), [
    (b"payload=%7B%7D", "not JSON"),
    (b"[1, 2]", "not an object"),
    (_body(after="$(reboot)"), "'after' is not a commit SHA"),
    (_body(ref="main"), "no valid 'ref'"),
    (_body(repository={"full_name": "dev/tasks"}), "repository.clone_url"),
])
def test_malformed_pushes_are_refused_with_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        _verdict(body)


def test_a_delivery_without_an_event_header_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="X-Forgejo-Event"):
        parse_delivery(_body(), {"X-Forgejo-Signature": "x"})


# --- application/x-www-form-urlencoded: the JSON is signed, the form is sent --------------------

def _form_push() -> tuple[bytes, bytes, dict[str, str]]:
    # '+', '%', '&', '=' and non-ASCII in the message: the characters the form encoding escapes.
    payload = push_payload(ref="refs/heads/main", before=A, after=B, clone_url=CLONE,
                           commits=[{"id": B, "message": "Naïve café: 50% + 2 & a=b\n"}])
    payload_json = forgejo_json(payload)
    body, headers = form_delivery(payload_json, SECRET)
    return payload_json, body, headers


def test_a_form_encoded_delivery_is_verified_over_the_json_it_carries() -> None:
    payload_json, body, headers = _form_push()

    signed = signed_payload(body, headers)
    verify_signature(signed, headers, SECRET.encode())
    verdict = decide(parse_delivery(signed, headers), APPS, tag_prefix={"tasks": "v"})

    assert body.startswith(b"payload=%7B%0A") and signed == payload_json
    assert verdict.action == "queue" and verdict.push is not None
    assert verdict.push.title == "Naïve café: 50% + 2 & a=b"


def test_a_json_delivery_is_verified_over_its_raw_body_even_when_it_looks_like_a_form() -> None:
    body = b"payload=%7B%7D"
    assert signed_payload(body, {"Content-Type": "application/json"}) == body


@pytest.mark.parametrize("body", [b"", b"other=1", b"payload=1&payload=2", b"payload=%ff", b"\xff"])
def test_a_form_delivery_without_one_payload_field_names_the_content_type(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="application/x-www-form-urlencoded delivery must carry"):
        signed_payload(body, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})


def test_the_gate_queues_a_form_encoded_delivery_and_never_calls_its_secret_wrong(start_gate, remote) -> None:
    gate = start_gate()
    sha = remote.commit("sent as a form")
    assert remote.push().returncode == 0
    payload_json = forgejo_json(push_payload(ref="refs/heads/main", before=A, after=sha, clone_url=remote.clone_url))
    body, headers = form_delivery(payload_json, WEBHOOK_SECRET)
    # The same headers on a form whose JSON changed after signing: that one is refused.
    tampered, _ = form_delivery(payload_json + b" ", WEBHOOK_SECRET)

    status, content, _ = gate.request("POST", "/hooks/forgejo", body, headers)
    wrong, wrong_content, _ = gate.request("POST", "/hooks/forgejo", tampered, headers)

    answer = json.loads(content)
    assert (status, answer["queued"]) == (202, True), answer
    assert gate.wait_for_run(answer["run"])["commit_sha"] == sha
    assert wrong == 401 and "does not match" in json.loads(wrong_content)["error"]
