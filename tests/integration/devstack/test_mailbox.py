"""The local mailbox: what the app sends through SES (the real SesMailer, moto in this process),
listed newest first by the console at /mail and printed by `python -m devstack mail` (make mail);
and `make token`'s users, who have an address the directory finds."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from moto.core import DEFAULT_ACCOUNT_ID

from chalicelib.adapters.cognito import CognitoDirectory
from chalicelib.adapters.ses_mail import SesMailer
from chalicelib.domain.mail import MailRejected
from devstack import mailbox
from devstack.chalice_config import StageConfig
from devstack.console import Console
from devstack.tokens import issue_token
from tests.integration.devstack.conftest import REGION
from tests.support.moto import free_port

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[3]
# The sender the local stack's dev stage sends from, verified as the stack verifies it.
SENDER = StageConfig("dev").environment()["MAIL_FROM"]


@pytest.fixture(scope="module")
def mailer(aws: Any) -> SesMailer:
    mailbox.record_send_times()  # as the stack does before moto serves
    ses = aws("sesv2")
    assert mailbox.verify_sender(ses, SENDER) == "no-reply@example.com"
    assert mailbox.verify_sender(ses, SENDER) == "no-reply@example.com"  # again: a restart reuses it
    return SesMailer(lambda: ses, SENDER)


@pytest.fixture(scope="module")
def console(aws: Any) -> Iterator[str]:
    running = Console(host="127.0.0.1", port=free_port(), xray=aws("xray"), emulator=None,
                      mailbox=functools.partial(mailbox.messages, DEFAULT_ACCOUNT_ID, REGION))
    running.start()
    try:
        yield f"http://127.0.0.1:{running.port}"
    finally:
        running.stop()


@pytest.fixture(scope="module")
def sent(mailer: SesMailer) -> list[str]:
    """Two messages sent one after the other; their subjects, oldest first."""
    subjects = [f"Order o-{uuid.uuid4().hex[:8]} confirmed", f"Stock low: p-{uuid.uuid4().hex[:8]} (Grüße)"]
    mailer.send(["alice@example.com"], subjects[0], "Thank you, Alice.\nYour order is confirmed.")
    mailer.send(["bob@example.com"], subjects[1], "Only 4 left.")
    return subjects


def _ours(entries: list[dict[str, Any]], subjects: list[str]) -> list[dict[str, Any]]:
    return [e for e in entries if e["subject"] in subjects]


def test_the_mailbox_lists_what_was_sent_newest_first_in_the_documented_shape(console, sent):
    answer = requests.get(f"{console}/mail", timeout=10)

    assert answer.status_code == 200
    newest, oldest = _ours(answer.json(), sent)
    assert (newest["to"], newest["subject"], newest["text"]) == (["bob@example.com"], sent[1], "Only 4 left.")
    assert (oldest["to"], oldest["subject"], oldest["text"]) == (
        ["alice@example.com"], sent[0], "Thank you, Alice.\nYour order is confirmed.")
    assert newest["from"] == SENDER
    stamps = [datetime.fromisoformat(e["sent_at"]) for e in (oldest, newest)]
    assert all(s.utcoffset() is not None and s.utcoffset().total_seconds() == 0 for s in stamps)
    assert stamps[0] <= stamps[1]


def test_a_message_ses_refused_is_not_in_the_mailbox(console, mailer, aws):
    subject = f"never sent {uuid.uuid4().hex[:8]}"
    with pytest.raises(MailRejected):
        SesMailer(lambda: aws("sesv2"), "nobody@unverified.example.org").send(["alice@example.com"], subject, "x")

    assert _ours(requests.get(f"{console}/mail", timeout=10).json(), [subject]) == []


def test_make_mail_prints_the_mailbox_newest_first_for_a_person(console, sent, tmp_path):
    (tmp_path / "endpoints.json").write_text(json.dumps({"mailbox": f"{console}/mail"}))

    done = subprocess.run([sys.executable, "-m", "devstack", "mail", "--limit", "1000"], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "DEVSTACK_DIR": str(tmp_path), "COLUMNS": "80"},
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{len(requests.get(f'{console}/mail', timeout=10).json())} messages in {console}/mail")
    assert done.stdout.index(sent[1]) < done.stdout.index(sent[0])
    assert "  to bob@example.com" in done.stdout
    assert "    Your order is confirmed." in done.stdout


def test_make_mail_without_a_running_stack_says_how_to_start_one(tmp_path):
    done = subprocess.run([sys.executable, "-m", "devstack", "mail"], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "DEVSTACK_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert "make run" in done.stderr


def test_the_viewer_without_a_mailbox_has_no_mail_page(aws):
    viewer = Console(host="127.0.0.1", port=free_port(), xray=aws("xray"), emulator=None)
    viewer.start()
    try:
        assert requests.get(f"http://127.0.0.1:{viewer.port}/mail", timeout=10).status_code == 404
    finally:
        viewer.stop()


def test_a_make_token_user_has_an_address_the_directory_finds_by_the_tokens_sub(provisioned, aws):
    summary = provisioned.summary()
    username = f"user{uuid.uuid4().hex[:8]}"
    token = issue_token(aws("cognito-idp"), summary["user_pool_id"], summary["user_pool_client_id"], username)
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]

    directory = CognitoDirectory(lambda: aws("cognito-idp"), summary["user_pool_id"])
    assert directory.email_of(sub) == f"{username}@example.com"
