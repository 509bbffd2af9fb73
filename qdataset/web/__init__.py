"""``qdataset serve``: watch runs live in a browser (needs ``pip install 'qdataset[web]'``).

A Bokeh server over one store, read-only: the run list at ``/`` and each run's
page at ``/run?id=<run id>``, both updated live.  Modules, one job each:

- ``plan``: which plots a run gets, from its ParamSpecs;
- ``decimate``, ``grid``: what large runs are reduced to before they are sent;
- ``columns``, ``follow``: one follower per watched run, shared by all sessions;
- ``plots``, ``runlist``, ``runpage``: the Bokeh models of the pages;
- ``server``: the server itself; ``command``: the CLI's ``serve`` subcommand.

Importing this package imports nothing heavy; :func:`serve` loads Bokeh.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve"]


def serve(*args: Any, **kwargs: Any) -> None:
    """Serve a store's runs until interrupted (see :func:`qdataset.web.server.serve`)."""
    from .server import serve as run_server

    run_server(*args, **kwargs)
