"""The ``qdataset serve`` subcommand (registered by qdataset.cli; loads Bokeh only when run)."""

from __future__ import annotations

import argparse
import sys


def add_serve_command(commands: argparse._SubParsersAction) -> None:
    """Register ``qdataset serve [--url] [--host] [--port] [--open] [--run ID]``."""
    serve = commands.add_parser(
        "serve", help="watch runs live in a browser (read-only; needs qdataset[web])",
        description="A live, read-only web view of a store: the run list at /, each "
                    "run at /run?id=RUN_ID.  Listens on 127.0.0.1 unless --host is given.")
    serve.add_argument("--url", help="store URL (default: $QDATASET_URL or the user data dir)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=5006,
                       help="port (default 5006; 0 picks a free one)")
    serve.add_argument("--open", action="store_true", help="open the page in a browser")
    serve.add_argument("--run", metavar="ID", help="also print (and --open) this run's page")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        from .server import serve
    except ImportError as exc:
        print(f"qdataset serve: {exc}; install the web extra: pip install 'qdataset[web]'",
              file=sys.stderr)
        return 2
    serve(args.url, host=args.host, port=args.port, open_browser=args.open, run=args.run)
    return 0
