"""Field notes on Flask: the same site as ../toolkit_site, with its templates and schema."""

import os
import secrets
import tempfile

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from fieldnotes.db import SHARED, create_tables


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder=str(SHARED / "templates"))
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
        DATABASE=os.environ.get("FIELDNOTES_DATABASE")
        or os.path.join(tempfile.gettempdir(), "fieldnotes-flask.sqlite3"),
    )
    app.config.update(config or {})
    # The templates put csrf_token() in every form; Flask-WTF's CSRFProtect gives a real one.
    app.jinja_env.globals["csrf_token"] = lambda: ""

    @app.errorhandler(403)
    @app.errorhandler(404)
    def error_page(error: HTTPException):
        page = render_template(
            f"{error.code}.html", title=f"{error.code} {error.name}", description=error.description
        )
        return page, error.code

    from fieldnotes import account, db, notes

    db.init_app(app)
    app.register_blueprint(account.bp)
    app.register_blueprint(notes.bp)
    create_tables(app.config["DATABASE"])
    return app
