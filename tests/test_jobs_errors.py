"""The jobs layer raises QDatasetError subclasses that also derive from the old built-ins."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

import qdataset.jobs as jobs_package
from qdataset import QDatasetError
from qdataset.jobs import (
    DeliveryError,
    EmailNotifier,
    FolderQueue,
    FolderQueueError,
    JobConfigError,
    JobEvent,
    JobQueue,
    JobWatcher,
    NotifierConfigError,
    QueueBackend,
    WebhookNotifier,
    Worker,
)

EVENT = JobEvent("job-1", "DONE", "RUNNING", 0.0)


def _closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_builtin_exception_is_raised_in_the_jobs_package():
    """Only raises caught inside the package (marked ``# internal``) may be built-ins."""
    builtin = re.compile(r"raise (ValueError|RuntimeError|KeyError|TypeError|Exception)\(")
    folder = Path(jobs_package.__file__).parent
    offenders = [f"{path.name}:{number}" for path in sorted(folder.glob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if builtin.search(line) and not line.endswith("# internal")]
    assert offenders == []


@pytest.mark.parametrize("poll", [0, -1.0, "1"])
def test_watcher_poll_interval(store, poll):
    with pytest.raises(JobConfigError, match="poll_interval") as caught:
        JobWatcher(store, poll_interval=poll)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, QDatasetError)


def test_worker_poll_and_backend_format(store):
    queue = JobQueue(store)
    with pytest.raises(JobConfigError, match="poll"):
        Worker(queue, "aer", poll=0)
    with pytest.raises(JobConfigError, match="'qpy' or 'qasm3'") as caught:
        QueueBackend(queue, "aer", format="json")
    assert isinstance(caught.value, ValueError)
    assert issubclass(NotifierConfigError, JobConfigError)


def test_unreachable_webhook_is_a_delivery_error_without_the_password():
    url = f"http://lab:s3cret@127.0.0.1:{_closed_port()}/hook"
    notifier = WebhookNotifier(url, timeout=2)
    with pytest.raises(DeliveryError) as caught:
        notifier.notify(EVENT)
    assert isinstance(caught.value, OSError)  # `except OSError` keeps working
    assert isinstance(caught.value.__cause__, OSError)
    for shown in (str(caught.value), notifier.name, repr(notifier)):
        assert "s3cret" not in shown and "lab:***@127.0.0.1" in shown


def test_unreachable_smtp_server_is_a_delivery_error():
    notifier = EmailNotifier(host="127.0.0.1", port=_closed_port(), sender="a@example.org",
                             to=["b@example.org"], timeout=2)
    with pytest.raises(DeliveryError, match="job job-1 is DONE") as caught:
        notifier.notify(EVENT)
    assert isinstance(caught.value, OSError) and isinstance(caught.value, QDatasetError)


def test_corrupt_folder_queue_file_is_a_folder_queue_error(tmp_path):
    queue = FolderQueue(tmp_path / "q")
    queue.upload_config("aer", {"max_shots": 10})
    (tmp_path / "q" / "backends" / "configs" / "aer.json").write_text("{not json")
    with pytest.raises(FolderQueueError, match="aer.json") as caught:
        queue.get_config("aer")
    assert isinstance(caught.value, OSError) and isinstance(caught.value, QDatasetError)


def test_folder_queue_on_a_file_is_a_folder_queue_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FolderQueueError, match="queue folder"):
        FolderQueue(blocker / "q")
