"""``qdataset serve``: the Bokeh server over one store, read-only."""

from __future__ import annotations

import socket
import sys
import webbrowser
from collections.abc import Callable
from functools import partial

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import Server
from bokeh.settings import settings

from ..store import Store, connect
from .follow import RunHub, RunListWatcher
from .runlist import run_list_document, run_page_path
from .runpage import run_document

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5006
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_WILDCARD = {"0.0.0.0", "::", ""}


def allowed_origins(host: str, port: int) -> list[str]:
    """The ``host:port`` values a page's websocket may come from: the served
    address only (and this machine's names when listening on every interface)."""
    names = {host}
    if host in _LOOPBACK:
        names |= {"127.0.0.1", "localhost"}
    if host in _WILDCARD:
        names = {"127.0.0.1", "localhost", socket.gethostname(), socket.getfqdn()}
        try:
            names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
        except OSError:
            pass
    return sorted(f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
                  for name in names if name)


def free_port(host: str) -> int:
    """A port nobody listens on now (for ``--port 0``)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class WebApp:
    """The server's state: one store, its run hub and run-list watcher, the Bokeh server.

    >>> app = WebApp(connect(url, create=False), port=0)
    >>> app.start(); print(app.url); app.run_forever()
    """

    def __init__(self, store: Store, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
                 ) -> None:
        self.store = store
        self.host = host
        self.port = port or free_port(host)
        self.hub = RunHub(store)
        self.watcher = RunListWatcher(store)
        # BokehJS comes from this server, never a CDN: pages work offline.
        settings.resources.set_value("server")
        applications = {
            "/": Application(FunctionHandler(partial(run_list_document, watcher=self.watcher,
                                                     store_name=store.display_url))),
            "/run": Application(FunctionHandler(partial(run_document, hub=self.hub))),
        }
        self.server = Server(applications, address=host, port=self.port,
                             allow_websocket_origin=allowed_origins(host, self.port),
                             check_unused_sessions_milliseconds=5000,
                             unused_session_lifetime_milliseconds=5000)

    @property
    def url(self) -> str:
        """The run list's address."""
        shown = f"[{self.host}]" if ":" in self.host else self.host or "127.0.0.1"
        return f"http://{shown}:{self.port}/"

    def run_url(self, run_id: str) -> str:
        """The address of run ``run_id``'s page."""
        return self.url + run_page_path(run_id)

    def start(self) -> None:
        self.server.start()

    def run_forever(self) -> None:
        """Serve until interrupted (Ctrl-C), then close everything."""
        try:
            self.server.io_loop.start()
        finally:
            self.close()

    def close(self) -> None:
        self.server.stop()
        self.watcher.close()
        self.hub.close()
        self.store.close()


def serve(url: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          open_browser: bool = False, run: str | None = None,
          say: Callable[[str], object] = print) -> None:
    """Serve the runs of the store at ``url`` until interrupted: the run list at
    ``/``, each run's page at ``/run?id=<run id>``.  Never writes to the store.

    >>> serve("sqlite:///lab.db", port=5006, open_browser=True)
    """
    store = connect(url, create=False, upgrade=False)  # nor changes its schema
    try:
        page_of = store.read_dataset(run).id if run is not None else None
        app = WebApp(store, host, port)
    except BaseException:
        store.close()
        raise
    if host not in _LOOPBACK:
        print(f"qdataset serve: warning: listening on {host or 'every interface'}: anyone "
              f"who can reach port {app.port} can read every run in {store.display_url}",
              file=sys.stderr, flush=True)
    app.start()
    say(f"qdataset serve: runs of {store.display_url} at {app.url}")
    target = app.url
    if page_of is not None:
        target = app.run_url(page_of)
        say(f"qdataset serve: run {page_of} at {target}")
    sys.stdout.flush()
    if open_browser:
        app.server.io_loop.add_callback(webbrowser.open, target)
    app.run_forever()
