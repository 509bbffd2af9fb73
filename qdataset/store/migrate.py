"""Bring a database to the schema this qdataset expects, through Alembic."""

from __future__ import annotations

import importlib.util
import re
import threading
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from ..errors import ReadOnlyError, SchemaVersionError, StoreError
from .boundary import translate
from .dialect import Dialect

_upgrade_lock = threading.Lock()


def migrations_dir() -> Path:
    """The Alembic environment: installed as qdataset._migrations, or the source tree's."""
    # Located, not imported for its code: the revisions are data to Alembic.
    spec = importlib.util.find_spec("qdataset._migrations")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent
    source = Path(__file__).resolve().parents[2] / "migrations"
    if (source / "env.py").exists():
        return source
    raise StoreError("qdataset's migrations are missing; reinstall qdataset")


@lru_cache(maxsize=1)
def _script_directory():
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(migrations_dir()))


def head_revision() -> str:
    """The newest schema revision this qdataset knows."""
    return _head_from_files() or _script_directory().get_current_head()


@lru_cache(maxsize=1)
def _head_from_files() -> str | None:
    """The head read from the revision files' ``revision``/``down_revision`` lines.

    Opening a store at head (the common case) then needs no Alembic import,
    which costs more than the rest of ``connect()``.  None when the history is
    not one plain line: Alembic decides then.
    """
    revisions, parents = set(), set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        text = path.read_text()
        found = _REVISION.search(text)
        if found is None:
            continue
        revisions.add(found.group(1))
        parent = _DOWN_REVISION.search(text)
        if parent is not None:
            parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


_REVISION = re.compile(r'^revision\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            if sa.inspect(conn).has_table("runs"):
                raise StoreError(
                    f"{engine.url!r} has a 'runs' table but no schema version; "
                    "it was not created by qdataset. Use another database."
                )
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def ensure_schema(engine: sa.Engine, create: bool = True, upgrade: bool = True) -> str:
    """Create a new database at head, upgrade an old one, refuse a newer one.

    With ``create`` false a database without qdataset's tables is a StoreError
    and nothing is created in it; with ``upgrade`` false an older store is a
    SchemaVersionError and nothing is changed in it.
    """
    head = head_revision()
    with _upgrade_lock:
        current = current_revision(engine)
        if current is None and not create:
            raise StoreError(
                f"no qdataset store at {engine.url!r}: the database (or schema) holds no "
                "qdataset tables; check the URL (reading never creates a store; "
                "connect(url) without create=False makes one)"
            )
        if current == head:
            return head
        known = {script.revision for script in _script_directory().walk_revisions()}
        if current is not None and current not in known:
            raise SchemaVersionError(
                f"the database at {engine.url!r} has schema revision {current!r}, which is "
                f"newer than this qdataset (head {head!r}); upgrade qdataset "
                "(pip install -U qdataset) to open it"
            )
        if not upgrade:
            raise SchemaVersionError(
                f"the store at {engine.url!r} has schema revision {current!r}, older than "
                f"this qdataset's {head!r}, and this read-only open does not upgrade it "
                "(processes running the older qdataset would refuse the upgraded store); "
                "upgrade it once with qdataset.connect(url) when every process using it "
                "runs this version, or read it with the qdataset version that wrote it"
            )
        try:
            with Dialect.of(engine).upgrade_lock(engine):
                # Another process may have upgraded it while we waited for the lock.
                if current_revision(engine) != head:
                    _upgrade(engine, "head")
        except Exception as exc:
            translated = translate(exc, engine.url)
            if isinstance(translated, ReadOnlyError):
                raise ReadOnlyError(
                    f"the store at {engine.url!r} has schema revision {current!r} and this "
                    f"qdataset needs {head!r}, but this connection may not change it "
                    f"({translated}); connect once as the store's owner (who may write) to "
                    "upgrade it, or use the qdataset version that wrote it"
                ) from exc
            raise
    return head


def _upgrade(engine: sa.Engine, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # A connection outside any transaction: Alembic then runs each revision in a
    # transaction of its own, and a revision that moves data (0005) can commit it
    # in batches, so a big store is not one giant transaction.
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, target)
