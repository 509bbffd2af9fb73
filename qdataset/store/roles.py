"""PostgreSQL roles for a shared lab server: a role that may only read a store.

People who only watch and analyse runs (a notebook on a desk, the live web
view) should connect as a role that cannot change anything, so no mistake of
theirs can.  :func:`grant_read_only` creates such a role, or makes an existing
one read-only for the store: it may log in, use the store's schema and SELECT
its tables, the tables there now and those qdataset creates later (a new
result layout is a new table).  Listening for live updates (``LISTEN``) needs
no grant.  Any write it tries fails in the database itself; qdataset reports
that as :class:`~qdataset.errors.ReadOnlyError` (see ``boundary.py``).

Two layers stop a write: the role has no write privilege on the schema's
tables (SQLSTATE 42501), and its sessions start read-only
(``default_transaction_read_only``, SQLSTATE 25006).

>>> grant_read_only("postgresql+psycopg://owner@lab-db/qdataset", "viewer", password="s3cret")
'public'
>>> store = connect("postgresql+psycopg://viewer:s3cret@lab-db/qdataset")  # reads only

SQLite has no roles: protect the file with file permissions instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..errors import InvalidArgumentError, ReadOnlyError, StoreError
from .boundary import driver_error, translate

if TYPE_CHECKING:
    from .store import Store

#: PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1).
MAX_ROLE_BYTES = 63

#: Table privileges a read-only role must not hold.
_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

_INSUFFICIENT_PRIVILEGE = "42501"


def quote_identifier(name: str) -> str:
    """``name`` as a PostgreSQL identifier, quoted (so any spelling is safe)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a PostgreSQL string literal (standard_conforming_strings on, the
    default since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def check_role_name(role: str) -> None:
    if not isinstance(role, str) or not role.strip():
        raise InvalidArgumentError(f"a role name must be a non-empty string, got {role!r}")
    if "\x00" in role or len(role.encode()) > MAX_ROLE_BYTES:
        raise InvalidArgumentError(
            f"role name {role[:40]!r} is not a PostgreSQL identifier: at most "
            f"{MAX_ROLE_BYTES} bytes and no NUL character")


def read_only_role_sql(role: str, schema: str, password: str | None = None, *,
                       exists: bool = False, owner: str | None = None) -> list[str]:
    """The statements that make ``role`` a login role that may only read ``schema``.

    ``exists``: the role is there already (ALTER instead of CREATE; its other
    privileges on the schema are revoked).  ``password``: set it (None: leave it
    as it is, or none for a new role).  ``owner``: the role whose future tables
    the role may read (default: the role running the statements; qdataset
    creates a table whenever a new result layout appears).

    >>> read_only_role_sql("viewer", "public")[0]
    'CREATE ROLE "viewer" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION'
    """
    check_role_name(role)
    r, s = quote_identifier(role), quote_identifier(schema)
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
    if password is not None:
        if "\x00" in password:
            raise InvalidArgumentError("a password cannot contain a NUL character")
        attributes += f" PASSWORD {quote_literal(password)}"
    for_owner = f" FOR ROLE {quote_identifier(owner)}" if owner else ""
    return [
        f"{'ALTER' if exists else 'CREATE'} ROLE {r} {attributes}",
        # Sessions of the role start read-only: a second lock beside the privileges.
        f"ALTER ROLE {r} SET default_transaction_read_only = on",
        f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
        f"REVOKE {', '.join(_WRITE_PRIVILEGES)} ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"ALTER DEFAULT PRIVILEGES{for_owner} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
    ]


def grant_read_only(store_or_url: Store | str | os.PathLike, role: str,
                    password: str | None = None) -> str:
    """Create (or update) PostgreSQL role ``role`` so that it may log in and only
    read the store: its schema's tables, now and later.  Returns the schema.

    Run it as the store's owner (the role that created the store), which also
    needs the CREATEROLE attribute to create the role.  ``password`` sets the
    role's password (None: unchanged; a new role then has none, for ``trust`` or
    ``peer`` authentication).  The reader connects with the same URL as the
    writers, its own user and password in it (and the same ``search_path``
    option if the store lives in another schema than ``public``).

    Raises StoreError for SQLite (no roles: use file permissions), for a role
    that cannot be made read-only (a superuser, the store's owner, or a member
    of a role that may write), and when the connected user may not grant.

    >>> grant_read_only(store, "viewer", password="s3cret")
    'public'
    """
    from .store import Store, connect

    check_role_name(role)
    own = not isinstance(store_or_url, Store)
    store = connect(store_or_url, create=False) if own else store_or_url
    try:
        if store.dialect != "postgresql":
            raise StoreError(
                f"{store.display_url!r} is an SQLite store, and SQLite has no roles: to let "
                "people only read it, give them read permission on the file and its folder "
                "and no write permission (e.g. chmod 644 lab.db, or a group with read "
                "access); SQLite then opens it read-only")
        return _grant(store.engine, role, password)
    finally:
        if own:
            store.close()


def _grant(engine: sa.Engine, role: str, password: str | None) -> str:
    try:
        with engine.begin() as conn:
            schema, user = conn.exec_driver_sql(
                "SELECT current_schema(), current_user").one()
            if schema is None:
                raise StoreError(
                    f"{engine.url!r}: no schema on the search_path exists, so there is no "
                    "store to grant access to; check the URL's search_path option")
            if role == user:
                raise StoreError(
                    f"role {role!r} is the one connected, the store's writer: it cannot be "
                    "made read-only; choose another name for the reading role")
            found = conn.exec_driver_sql(
                "SELECT rolsuper FROM pg_roles WHERE rolname = %(role)s",
                {"role": role}).one_or_none()
            if found is not None and found[0]:
                raise StoreError(
                    f"role {role!r} is a superuser, which PostgreSQL never restricts: it "
                    "cannot be made read-only; choose another name for the reading role")
            for statement in read_only_role_sql(role, schema, password,
                                                exists=found is not None):
                conn.exec_driver_sql(statement.replace("%", "%%"))
            _check_read_only(conn, role, schema)
    except sa.exc.DBAPIError as exc:
        orig = driver_error(exc)
        if getattr(orig, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
            detail = str(orig).strip().splitlines()[0]
            raise StoreError(
                f"{engine.url!r}: the connected user may not create or change role "
                f"{role!r} or grant on the store's tables ({detail}); run this as the "
                "store's owner, with the CREATEROLE attribute (ALTER ROLE owner CREATEROLE)"
            ) from exc
        translated = translate(exc, engine.url)
        if translated is None:
            raise
        raise translated from exc
    except ReadOnlyError as exc:  # the connected role is itself read-only
        raise StoreError(
            f"{engine.url!r}: the connected user may only read, so it cannot grant "
            f"({exc}); run this as the store's owner") from exc
    return schema


def _check_read_only(conn: sa.Connection, role: str, schema: str) -> None:
    """Raise StoreError if ``role`` may still write a table of ``schema`` (through
    ownership or membership of a role that may)."""
    checks = " OR ".join(f"has_table_privilege(%(role)s, c.oid, '{p}')"
                         for p in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"))
    writable = conn.exec_driver_sql(
        f"SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND ({checks}) "
        "ORDER BY c.relname LIMIT 3", {"role": role, "schema": schema}).scalars().all()
    if writable:
        raise StoreError(
            f"role {role!r} may still write table(s) {', '.join(writable)} of schema "
            f"{schema!r}: it owns them or belongs to a role that may write; use a new "
            "role name for readers (nothing was changed)")
