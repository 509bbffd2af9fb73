"""The ``qdataset worker`` command (registered by :mod:`qdataset.cli`)."""

from __future__ import annotations

import argparse
import logging


def add_worker_command(commands: argparse._SubParsersAction) -> None:
    """Add ``qdataset worker --backend NAME [--url URL | --folder PATH] [--once] [--poll S]
    [--lease-timeout S] [--max-attempts N]``."""
    worker = commands.add_parser(
        "worker", help="run queued jobs of a backend on qiskit-aer",
        description="Claim jobs of one backend from the job queue and run them on qiskit-aer.")
    worker.add_argument("--backend", required=True, help="backend name, e.g. aer")
    where = worker.add_mutually_exclusive_group()
    where.add_argument("--url", help="store URL (default: $QDATASET_URL or the user data dir)")
    where.add_argument("--folder", help="a sqooler-style queue folder instead of a store")
    worker.add_argument("--once", action="store_true",
                        help="exit when the queue is empty instead of waiting for jobs")
    worker.add_argument("--poll", type=float, default=1.0,
                        help="seconds between looks at an empty queue (default 1)")
    worker.add_argument("--lease-timeout", type=float, default=None,
                        help="seconds a claimed job stays this worker's without renewal "
                             "(default: the store's lease_timeout; 10 for --folder)")
    worker.add_argument("--max-attempts", type=int, default=3,
                        help="claims of a job before losing its worker once more ends it "
                             "as ERROR (default 3)")
    worker.add_argument("--quiet", action="store_true", help="log warnings only")
    worker.set_defaults(func=run_worker_command)


def run_worker_command(args: argparse.Namespace) -> int:
    """Run the worker until the queue is empty (``--once``) or Ctrl-C."""
    from .folder import FolderQueue
    from .queue import JobQueue
    from .worker import Worker

    if args.poll <= 0:
        raise SystemExit("qdataset worker: --poll must be a positive number of seconds")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    store = None
    if args.folder:
        queue: FolderQueue | JobQueue = FolderQueue(
            args.folder, lease_timeout=args.lease_timeout, max_attempts=args.max_attempts)
    else:
        from ..store import connect

        store = connect(args.url)
        queue = JobQueue(store, lease_timeout=args.lease_timeout,
                         max_attempts=args.max_attempts)
    try:
        worker = Worker(queue, args.backend, poll=args.poll)
        try:
            worker.run(once=args.once)
        finally:
            print(f"qdataset worker: {worker.done} job(s) done, {worker.failed} failed")
    finally:
        if store is not None:
            store.close()
    return 0
