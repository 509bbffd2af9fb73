"""Notifiers against real local servers: SMTP (aiosmtpd) and HTTP (http.server)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qdataset.jobs import (
    EmailNotifier,
    JobEvent,
    JobWatcher,
    NotifierConfigError,
    WebhookNotifier,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeJob:
    def __init__(self, job_id: str, status: str = "RUNNING") -> None:
        self._id, self.state = job_id, status

    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        return self.state


@pytest.fixture
def smtp_server():
    """A real SMTP server on localhost; yields (port, list of received messages)."""
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    received: list[email.message.EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            received.append((envelope.rcpt_tos, msg))
            return "250 Message accepted for delivery"

    port = _free_port()
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


@pytest.fixture
def http_server():
    """A local HTTP server recording JSON POSTs; the first ``fail`` requests get a 500."""
    state = {"fail": 0, "posts": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state["fail"] > 0:
                state["fail"] -= 1
                self.send_response(500)
                self.end_headers()
                return
            state["posts"].append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def _wait(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.02)
    return predicate()


def test_email_is_received_when_job_finishes(store, smtp_server):
    port, received = smtp_server
    notifier = EmailNotifier(host="127.0.0.1", port=port, sender="lab@example.org",
                             to=["me@example.org", "you@example.org"])
    job = FakeJob("job-42")
    with JobWatcher(store, [notifier], poll_interval=0.02) as watcher:
        watcher.register_job(job)
        watcher.update_job_info({"job_id": "job-42", "label": "T1 sweep"})
        watcher.poll_once()  # the watcher has seen the job before it finishes
        job.state = "DONE"
        assert _wait(lambda: len(received) == 1)
    # stop() joined the thread after its last poll, and sending is synchronous
    assert len(received) == 1  # exactly one e-mail
    recipients, msg = received[0]
    assert recipients == ["me@example.org", "you@example.org"]
    assert msg["Subject"] == "[qdataset] job job-42 is DONE"
    assert msg["From"] == "lab@example.org"
    body = msg.get_content()
    assert "Job job-42 entered status DONE." in body
    assert "previous status: RUNNING" in body
    assert "label:           T1 sweep" in body


def test_email_settings_from_env_and_config_file(tmp_path, monkeypatch, smtp_server):
    port, received = smtp_server
    config = tmp_path / "smtp.ini"
    config.write_text(f"[smtp]\nhost = 127.0.0.1\nport = {port}\nsender = lab@example.org\n"
                      "user = lab\npassword = from-file\n")
    monkeypatch.setenv("QDATASET_SMTP_CONFIG", str(config))
    monkeypatch.setenv("QDATASET_SMTP_TO", "a@example.org, b@example.org")
    monkeypatch.delenv("QDATASET_SMTP_PASSWORD", raising=False)
    notifier = EmailNotifier()
    assert (notifier.host, notifier.port, notifier.to) == (
        "127.0.0.1", port, ["a@example.org", "b@example.org"])
    assert notifier._login() == ("lab", "from-file")
    monkeypatch.setenv("QDATASET_SMTP_PASSWORD", "from-env")
    assert notifier._login() == ("lab", "from-env")
    assert "from-env" not in repr(notifier.__dict__)  # the password is never kept
    monkeypatch.setenv("QDATASET_SMTP_CONFIG", str(tmp_path / "missing.ini"))
    monkeypatch.delenv("QDATASET_SMTP_TO")
    with pytest.raises(NotifierConfigError, match="QDATASET_SMTP_HOST"):
        EmailNotifier()


def test_credentials_are_not_stored_in_the_database(store, smtp_server, monkeypatch):
    port, received = smtp_server
    monkeypatch.setenv("QDATASET_SMTP_PASSWORD", "s3cret-pw")
    watcher = JobWatcher(store, [EmailNotifier(host="127.0.0.1", port=port,
                                               sender="l@example.org", to="m@example.org")])
    watcher.register_job(FakeJob("j", "DONE"))
    watcher.poll_once()
    assert len(received) == 1
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        for table in ("watched_jobs", "job_notifications"):
            dump = repr(conn.execute(sa.text(f"SELECT * FROM {table}")).all())
            assert "s3cret-pw" not in dump


def test_webhook_posts_json(store, http_server):
    url, state = http_server
    job = FakeJob("hook-1", "QUEUED")
    watcher = JobWatcher(store, [WebhookNotifier(url + "/qdataset", headers={"X-Lab": "7"})])
    watcher.register_job(job, notify_status=["RUNNING", "DONE"])
    watcher.poll_once()
    job.state = "RUNNING"
    watcher.poll_once()
    job.state = "DONE"
    watcher.poll_once()
    watcher.poll_once()
    assert [p[2]["status"] for p in state["posts"]] == ["RUNNING", "DONE"]
    path, headers, body = state["posts"][1]
    assert path == "/qdataset" and headers["Content-Type"] == "application/json"
    assert headers["X-Lab"] == "7"
    assert body["job_id"] == "hook-1" and body["previous"] == "RUNNING"
    assert body["time_iso"].endswith("+00:00")


def test_webhook_failure_is_retried_with_backoff(store, http_server, caplog):
    url, state = http_server
    state["fail"] = 2
    watcher = JobWatcher(store, [WebhookNotifier(url)], poll_interval=0.01,
                         retries=3, backoff=0.05)
    watcher.register_job(FakeJob("retry-me", "DONE"))
    with watcher:
        assert _wait(lambda: len(state["posts"]) == 1)
        assert _wait(lambda: watcher.pending() == 0)
    assert state["fail"] == 0 and len(state["posts"]) == 1
    assert caplog.text.count("retrying in") == 2
    [note] = watcher.notifications("retry-me")
    assert note["error"] is None and note["delivered_at"] is not None


def test_webhook_token_from_environment(http_server, monkeypatch):
    url, state = http_server
    hook = WebhookNotifier(url, token_env="LAB_HOOK_TOKEN")
    event = JobEvent("j", "DONE", None, time.time())
    with pytest.raises(NotifierConfigError, match="LAB_HOOK_TOKEN"):
        hook.notify(event)
    monkeypatch.setenv("LAB_HOOK_TOKEN", "tok")
    hook.notify(event)
    assert state["posts"][0][1]["Authorization"] == "Bearer tok"
    with pytest.raises(NotifierConfigError, match="http"):
        WebhookNotifier("ftp://example.org")


def test_unreachable_smtp_server_does_not_crash_the_watcher(store, caplog):
    notifier = EmailNotifier(host="127.0.0.1", port=_free_port(), sender="a@example.org",
                             to="b@example.org", timeout=1)
    watcher = JobWatcher(store, [notifier], poll_interval=0.01, retries=1, backoff=0.01)
    watcher.register_job(FakeJob("lonely", "DONE"))
    with watcher:
        assert _wait(lambda: [n["delivered_at"] is not None
                              for n in watcher.notifications("lonely")] == [True])
        assert watcher.running
    assert "gave up" in caplog.text


# -- idempotency keys (issue 13, item 10) ---------------------------------------------------


def test_events_carry_a_key_derived_from_job_and_status():
    import hashlib

    event = JobEvent("job-42", "DONE", "RUNNING", 1.0)
    assert event.key == hashlib.sha256(b"job-42|DONE").hexdigest()[:32]
    assert JobEvent("job-42", "DONE", None, 99.0, label="x").key == event.key  # same notification
    assert JobEvent("job-42", "ERROR", "RUNNING", 1.0).key != event.key
    assert event.message_id == f"<{event.key}@qdataset>"
    assert event.to_dict()["key"] == event.key


def test_email_message_id_is_the_same_for_a_resent_notification(smtp_server):
    port, received = smtp_server
    notifier = EmailNotifier(host="127.0.0.1", port=port, sender="lab@example.org",
                             to="me@example.org")
    notifier.notify(JobEvent("job-7", "DONE", "RUNNING", 10.0))
    notifier.notify(JobEvent("job-7", "DONE", "RUNNING", 12.5))  # e.g. after a crash
    notifier.notify(JobEvent("job-7", "ERROR", "DONE", 13.0))
    assert _wait(lambda: len(received) == 3)
    ids = [msg["Message-ID"] for _, msg in received]
    key = JobEvent("job-7", "DONE", None, 0.0).key
    assert ids[0] == ids[1] == f"<{key}@qdataset>"
    assert ids[2] != ids[0] and ids[2].endswith("@qdataset>")


def test_webhook_sends_the_key_as_header_and_in_the_body(http_server):
    url, state = http_server
    hook = WebhookNotifier(url, headers={"Idempotency-Key": "not this one"})
    event = JobEvent("job-9", "DONE", "RUNNING", 5.0)
    hook.notify(event)
    hook.notify(JobEvent("job-9", "DONE", "RUNNING", 6.0))
    (_, first_headers, first), (_, second_headers, second) = state["posts"]
    assert first_headers["Idempotency-Key"] == second_headers["Idempotency-Key"] == event.key
    assert first["key"] == second["key"] == event.key
    assert first["time"] != second["time"]


_CRASHING_WATCHER = """
import os, signal, sys
import qdataset
from qdataset.jobs import JobWatcher, WebhookNotifier

class Done:
    def job_id(self):
        return "crash-job"
    def status(self):
        return "DONE"

def crash(event):  # the watcher dies after the webhook got the event, before recording it
    os.kill(os.getpid(), signal.SIGKILL)

store = qdataset.connect(sys.argv[1])
watcher = JobWatcher(store, [WebhookNotifier(sys.argv[2]), crash])
watcher.register_job(Done())
watcher.poll_once()
"""


@pytest.mark.slow  # a Python process
def test_duplicate_after_a_watcher_crash_has_the_same_key(store_url, http_server, tmp_path):
    """A watcher SIGKILLed between sending and recording: the next watcher sends the
    notification again, and the receiver sees the same key twice."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import qdataset

    url, state = http_server
    script = tmp_path / "crashing_watcher.py"
    script.write_text(_CRASHING_WATCHER)
    child = subprocess.run([sys.executable, str(script), store_url, url], capture_output=True,
                           text=True, timeout=120,
                           env={**os.environ,
                                "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(state["posts"]) == 1
    with qdataset.connect(store_url) as store:
        watcher = JobWatcher(store, [WebhookNotifier(url)], poll_interval=0.02, lease=0.2)
        with watcher:
            assert _wait(lambda: len(state["posts"]) == 2)
            assert _wait(lambda: watcher.pending() == 0)
        [note] = watcher.notifications("crash-job")
        assert note["delivered_at"] is not None
    (_, h1, b1), (_, h2, b2) = state["posts"]
    key = JobEvent("crash-job", "DONE", None, 0.0).key
    assert h1["Idempotency-Key"] == h2["Idempotency-Key"] == b1["key"] == b2["key"] == key
