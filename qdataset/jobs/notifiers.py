"""Notifiers: what a :class:`~qdataset.jobs.JobWatcher` does when a job enters a status.

A notifier is any object with ``notify(event)`` that raises on failure (the
watcher retries it with backoff and logs; it never stops the watcher).  Plain
callables are wrapped in :class:`CallbackNotifier`.

Every event carries an idempotency key derived from (job id, status),
:attr:`JobEvent.key`: the same for every delivery of one notification, also
when a watcher that crashed after sending but before recording the delivery
sends it again.  E-mails carry it as their ``Message-ID``
(``<KEY@qdataset>``), webhooks as the ``Idempotency-Key`` header and the
``key`` field of the JSON body, so a receiver can drop the rare duplicate.

Credentials are never arguments stored anywhere: :class:`EmailNotifier` reads
the SMTP user and password from the environment (``QDATASET_SMTP_USER``,
``QDATASET_SMTP_PASSWORD``) or from an INI file (``[smtp]`` section; path in
``QDATASET_SMTP_CONFIG``, default ``<user config dir>/qdataset/smtp.ini``).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import smtplib
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from .errors import DeliveryError, NotifierConfigError


@dataclass(frozen=True)
class JobEvent:
    """A job entered a watched status.

    ``status`` and ``previous`` are status names ("DONE", "RUNNING", ...;
    ``previous`` is None when the job had not been seen before); ``time`` is
    unix seconds of when the watcher saw it.  ``key`` identifies the
    notification, not the delivery: every event about the same (job, status)
    has the same key (32 hex digits).
    """

    job_id: str
    status: str
    previous: str | None
    time: float
    label: str | None = None
    backend: str | None = None

    @property
    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.time, tz=UTC)

    @property
    def key(self) -> str:
        """The idempotency key: the first 32 hex digits of sha256("<job_id>|<status>")."""
        return idempotency_key(self.job_id, self.status)

    @property
    def message_id(self) -> str:
        """The ``Message-ID`` of the e-mail about this event: ``<KEY@qdataset>``."""
        return f"<{self.key}@qdataset>"

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-able dict (what webhooks receive), with ``time_iso`` and
        the idempotency ``key``."""
        return {**asdict(self), "time_iso": self.datetime.isoformat(), "key": self.key}

    def __str__(self) -> str:
        before = f" (was {self.previous})" if self.previous else ""
        return f"job {self.job_id} is {self.status}{before}"


def idempotency_key(job_id: str, status: str) -> str:
    """The key of the notification that job ``job_id`` entered ``status``.

    >>> idempotency_key("job-42", "DONE") == JobEvent("job-42", "DONE", None, 0.0).key
    True
    """
    return hashlib.sha256(f"{job_id}|{status}".encode()).hexdigest()[:32]


class Notifier(Protocol):
    """Anything with a ``notify(event)`` method that raises when delivery failed."""

    def notify(self, event: JobEvent) -> None: ...


class CallbackNotifier:
    """Call ``function(event)`` for every event.

    >>> watcher = JobWatcher(store, notifiers=[CallbackNotifier(print)])  # or just [print]
    """

    def __init__(self, function: Callable[[JobEvent], Any]) -> None:
        if not callable(function):
            raise NotifierConfigError(f"{function!r} is not callable; pass a function(event)")
        self.function = function
        self.name = f"callback:{getattr(function, '__qualname__', repr(function))}"

    def notify(self, event: JobEvent) -> None:
        self.function(event)

    def __repr__(self) -> str:
        return f"<CallbackNotifier {self.name}>"


def as_notifier(item: Any) -> Any:
    """A notifier for ``item``: notifiers pass through, callables are wrapped."""
    if hasattr(item, "notify") and callable(item.notify):
        return item
    if callable(item):
        return CallbackNotifier(item)
    raise NotifierConfigError(
        f"{item!r} is not a notifier; pass a function(event), an EmailNotifier, "
        "a WebhookNotifier or an object with notify(event)"
    )


def notifier_name(notifier: Any) -> str:
    return str(getattr(notifier, "name", type(notifier).__name__))


# -- e-mail ------------------------------------------------------------------------------
def _smtp_config_file(path: str | os.PathLike | None) -> dict[str, str]:
    if path is None:
        path = os.environ.get("QDATASET_SMTP_CONFIG")
    if path is None:
        import platformdirs

        path = Path(platformdirs.user_config_dir("qdataset", appauthor=False)) / "smtp.ini"
    path = Path(path).expanduser()
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    parser.read(path, encoding="utf-8")
    return dict(parser["smtp"]) if parser.has_section("smtp") else {}


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class EmailNotifier:
    """Send an e-mail over SMTP for each event.

    Settings not given as arguments come from ``QDATASET_SMTP_HOST``, ``_PORT``,
    ``_FROM``, ``_TO`` (comma-separated), ``_STARTTLS``, ``_SSL`` or the same
    keys (``host``, ``port``, ``sender``, ``to``, ``starttls``, ``ssl``) in the
    ``[smtp]`` section of the config file.  The login (``user``/``password``,
    env ``QDATASET_SMTP_USER``/``QDATASET_SMTP_PASSWORD``) is read from there
    only, when sending, and never stored in the database.

    >>> EmailNotifier(host="localhost", port=8025, sender="lab@example.org",
    ...               to=["me@example.org"])
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        sender: str | None = None,
        to: str | Sequence[str] | None = None,
        *,
        starttls: bool | None = None,
        ssl: bool | None = None,
        timeout: float = 10.0,
        config_file: str | os.PathLike | None = None,
        subject: str = "[qdataset] job {job_id} is {status}",
    ) -> None:
        self._config_file = config_file
        file = _smtp_config_file(config_file)
        env = os.environ

        def pick(value: Any, key: str) -> Any:
            if value is not None:
                return value
            return env.get(f"QDATASET_SMTP_{key.upper()}", file.get(key))

        self.host = pick(host, "host")
        self.port = int(pick(port, "port") or 0)
        self.sender = sender or env.get("QDATASET_SMTP_FROM") or file.get("sender") \
            or file.get("from")
        recipients = pick(to, "to")
        if isinstance(recipients, str):
            recipients = [r.strip() for r in recipients.split(",") if r.strip()]
        self.to = list(recipients or [])
        self.starttls = _flag(pick(starttls, "starttls") or False)
        self.ssl = _flag(pick(ssl, "ssl") or False)
        self.timeout = timeout
        self.subject = subject
        missing = [name for name, value in (("host", self.host), ("sender", self.sender),
                                            ("to", self.to)) if not value]
        if missing:
            raise NotifierConfigError(
                f"EmailNotifier needs {', '.join(missing)}: pass them as arguments, set "
                "QDATASET_SMTP_HOST / QDATASET_SMTP_FROM / QDATASET_SMTP_TO, or put them "
                "in the [smtp] section of the config file"
            )
        if not self.port:
            self.port = 465 if self.ssl else 25
        self.name = f"email:{','.join(self.to)}"

    def __repr__(self) -> str:
        return f"<EmailNotifier {self.host}:{self.port} to {self.to}>"

    def _login(self) -> tuple[str | None, str | None]:
        file = _smtp_config_file(self._config_file)
        user = os.environ.get("QDATASET_SMTP_USER", file.get("user"))
        password = os.environ.get("QDATASET_SMTP_PASSWORD", file.get("password"))
        return user, password

    def message(self, event: JobEvent) -> EmailMessage:
        """The e-mail sent for ``event``."""
        msg = EmailMessage()
        msg["Subject"] = self.subject.format(**event.to_dict())
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Message-ID"] = event.message_id  # the same for a resent notification
        lines = [
            f"Job {event.job_id} entered status {event.status}.",
            "",
            f"job id:          {event.job_id}",
            f"status:          {event.status}",
            f"previous status: {event.previous or '(not seen before)'}",
            f"seen at:         {event.datetime:%Y-%m-%d %H:%M:%S} UTC",
        ]
        if event.backend:
            lines.append(f"backend:         {event.backend}")
        if event.label:
            lines.append(f"label:           {event.label}")
        lines += ["", "-- sent by the qdataset job watcher"]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def notify(self, event: JobEvent) -> None:
        """Send the e-mail for ``event``; :class:`DeliveryError` if the server refuses it."""
        smtp_class = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
        try:
            with smtp_class(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                user, password = self._login()
                if user and password:
                    smtp.login(user, password)
                smtp.send_message(self.message(event))
        except OSError as exc:  # smtplib.SMTPException and socket errors are OSErrors
            raise DeliveryError(
                f"e-mail about {event} via {self.host}:{self.port} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


# -- webhook -----------------------------------------------------------------------------
class WebhookNotifier:
    """HTTP POST each event as JSON (``JobEvent.to_dict()``) to ``url``.

    The request carries the event's idempotency key as the ``Idempotency-Key``
    header (and as ``key`` in the body): a receiver that has seen the key
    before can answer 2xx and drop the duplicate.

    A bearer token, if the endpoint needs one, is read from the environment
    variable named by ``token_env`` when sending.  Any non-2xx answer counts
    as a failure (and is retried by the watcher).

    >>> WebhookNotifier("https://hooks.example.org/qdataset", token_env="LAB_HOOK_TOKEN")
    """

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None,
                 token_env: str | None = None, timeout: float = 10.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise NotifierConfigError(f"webhook URL {url!r} must start with http:// or https://")
        self.url = url
        self.headers = dict(headers or {})
        self.token_env = token_env
        self.timeout = timeout
        self.name = f"webhook:{_without_password(url)}"

    def __repr__(self) -> str:
        return f"<WebhookNotifier {_without_password(self.url)}>"

    def notify(self, event: JobEvent) -> None:
        body = json.dumps(event.to_dict()).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "qdataset-job-watcher",
                   **self.headers, "Idempotency-Key": event.key}
        if self.token_env:
            token = os.environ.get(self.token_env)
            if not token:
                raise NotifierConfigError(
                    f"environment variable {self.token_env} (the webhook token) is not set"
                )
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        shown = _without_password(self.url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status, reason = response.status, response.reason
        except OSError as exc:  # URLError, HTTPError (4xx/5xx) and timeouts are OSErrors
            raise DeliveryError(
                f"webhook {shown} failed for {event}: {type(exc).__name__}: {exc}"
            ) from exc
        if not 200 <= status < 300:  # e.g. a 3xx that urllib did not follow
            raise DeliveryError(f"webhook {shown} answered {status} {reason} for {event}")


def _without_password(url: str) -> str:
    """``url`` with any password in it replaced by ``***``, for names and messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
