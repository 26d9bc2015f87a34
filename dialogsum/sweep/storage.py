"""Where a sweep's study lives: ``--storage`` checked when the options are read (before the
model loads or anything is written), and how a URL is shown in messages (no password).

SQLAlchemy (Optuna's storage layer) is imported only when a URL is checked, and only where it
is installed: without it, the sweep extra's own check says what to install.
"""

from __future__ import annotations

from pathlib import Path

#: The Python database drivers SQLAlchemy loads for a URL, and the package installing each.
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "asyncpg": "asyncpg",
    "mysqldb": "mysqlclient",
    "pymysql": "PyMySQL",
    "mysqlconnector": "mysql-connector-python",
    "oracledb": "oracledb",
    "pyodbc": "pyodbc",
}
#: Storage URLs that work, for messages.
EXAMPLES = (
    "sqlite:////absolute/path/study.db (a file) or "
    "postgresql+psycopg2://user:password@host/database"
)


def check_storage(url: str) -> str:
    """``url`` if Optuna can open a study there: a database URL, of a database and driver
    SQLAlchemy knows, the driver installed; a relative SQLite path made absolute (Ray Tune
    runs trials in folders of their own). A ValueError says which and what to change."""
    try:
        from sqlalchemy.dialects import __all__ as dialects
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    except ImportError:
        return url
    from dialogsum.validation import likely_key

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            f"{_masked(url)!r} is not a database URL; write it as DATABASE://..., e.g. {EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        if backend in dialects:  # the database is known; its driver is not
            raise ValueError(
                f"{parsed.get_driver_name()!r} is not a driver SQLAlchemy knows for {backend}; "
                f"leave it out ({backend}://...) for SQLAlchemy's own, or name one it knows, "
                f"e.g. {EXAMPLES}"
            ) from None
        meant = likely_key(backend, list(dialects), {})
        hint = f" (did you mean {meant}?)" if meant else ""
        raise ValueError(
            f"{parsed.drivername!r} is not a database SQLAlchemy knows{hint}; it knows "
            f"{', '.join(dialects)}, e.g. {EXAMPLES}"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        driver = str(dialect.driver)
        package = DRIVER_PACKAGES.get(driver, driver)
        raise ValueError(
            f"{backend}'s driver {driver!r} is not installed ({exc}): pip install "
            f"'{package}', or name a driver that is installed in the URL ({backend}+DRIVER://)"
        ) from None
    database = parsed.database
    if backend != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("~"):
        raise ValueError(
            f"SQLite does not expand '~' in {database}: give the whole path "
            f"(sqlite:////home/you/study.db)"
        )
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return str(parsed.set(database=str(Path(database).absolute())).render_as_string(False))


def _masked(text: str) -> str:
    """``text`` with what looks like a URL's password (``user:password@``) hidden."""
    import re

    return re.sub(r"([^:/@\s]+):[^@/\s]+@", r"\1:***@", text)


def redacted(url: str) -> str:
    """``url`` as messages show it: its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # SQLAlchemy missing (no database URL then), or not a URL it reads
        return url
