"""The Chalice app, its ContentManager, and what every view shares: the database,
passwords and ``login_required``."""

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import sqlite3
import tempfile

from chalice import Chalice

from chalicelib.chalice_http_toolkit import ContentManager

HERE = os.path.dirname(os.path.abspath(__file__))
DB_NAME = "fieldnotes-toolkit.sqlite3"

# Deployed, set SECRET_KEY in the function's environment (sessions answer 500 without
# one); locally a key per run.
SECRET_KEY = os.environ.get("SECRET_KEY")
if SECRET_KEY is None and "AWS_LAMBDA_FUNCTION_NAME" not in os.environ:
    SECRET_KEY = secrets.token_urlsafe(32)

app = Chalice(app_name="fieldnotes")
cm = ContentManager(
    os.path.join(HERE, "templates"), os.path.join(HERE, "static"), app, secret_key=SECRET_KEY
)


def database_path() -> str:
    # SQLite for local runs; on Lambda only /tmp is writable (and kept per container).
    return os.environ.get("FIELDNOTES_DATABASE") or os.path.join(tempfile.gettempdir(), DB_NAME)


def database() -> sqlite3.Connection:
    """This request's SQLite connection, opened on first use (closed after the view)."""
    if "db" not in cm.g:
        cm.g.db = sqlite3.connect(database_path())
        cm.g.db.row_factory = sqlite3.Row
    return cm.g.db


def create_tables() -> None:
    """Create the tables that do not exist yet (``schema.sql``)."""
    # (a connection used as a context manager commits but stays open: close it too)
    with open(os.path.join(HERE, "schema.sql")) as schema:
        script = schema.read()
    with contextlib.closing(sqlite3.connect(database_path())) as db, db:
        db.executescript(script)


@app.middleware("http")
def close_database(event, get_response):
    try:
        return get_response(event)
    finally:
        connection = cm.g.pop("db", None)
        if connection is not None:
            connection.close()


def hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 600_000)
    return f"pbkdf2_sha256$600000${salt}${digest.hex()}"


def password_matches(stored: str, password: str) -> bool:
    _, rounds, salt, expected = stored.split("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(rounds))
    return hmac.compare_digest(digest.hex(), expected)


def login_required(view):
    """Send a visitor who is not signed in to the sign-in page."""

    @functools.wraps(view)
    def wrapped(**kwargs):
        if cm.g.user is None:
            return cm.redirect(cm.url_for("account.sign_in"), 302)
        return view(**kwargs)

    return wrapped
