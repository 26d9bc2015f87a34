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
    """``url`` if Optuna can open a study there: a database URL, of a database SQLAlchemy
    knows, whose driver is installed, and (SQLite) whose folder exists. A ValueError says which
    and what to change."""
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
            f"{url!r} is not a database URL; write it as DATABASE://..., e.g. {EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
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
    if backend == "sqlite" and database and database != ":memory:":
        folder = Path(database).expanduser().absolute().parent
        if not folder.is_dir():
            raise ValueError(
                f"the folder of the SQLite file {database} does not exist ({folder}); create "
                f"it first, or give a file in a folder that exists (sqlite:////absolute/path/"
                f"study.db; three slashes before a relative path)"
            )
    return url


def redacted(url: str) -> str:
    """``url`` as messages show it: its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # SQLAlchemy missing (no database URL then), or not a URL it reads
        return url
