"""The SQLite database: one connection per request, closed when the request ends."""

import contextlib
import sqlite3
from pathlib import Path

from flask import Flask, current_app, g

#: The toolkit site's chalicelib: the templates and the schema both sites use.
SHARED = Path(__file__).resolve().parents[2] / "toolkit_site" / "chalicelib"


def database() -> sqlite3.Connection:
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
        g.db.row_factory = sqlite3.Row
    return g.db


def close_database(error: BaseException | None = None) -> None:
    connection = g.pop("db", None)
    if connection is not None:
        connection.close()


def create_tables(path: str) -> None:
    """Create the tables that do not exist yet (``schema.sql``)."""
    # (a connection used as a context manager commits but stays open: close it too)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript((SHARED / "schema.sql").read_text())


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_database)
