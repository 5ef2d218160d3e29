"""Joining, signing in and out; the signed-in writer for every request."""

import sqlite3

from chalice import Blueprint

from chalicelib.chalice_http_toolkit import FORM_CONTENT_TYPES, FORM_PAGE_CONTENT_TYPES
from chalicelib.web import cm, database, hash_password, password_matches

bp = Blueprint(__name__)


@bp.middleware("http")
def find_writer(event, get_response):
    writer_id = cm.session.get("writer_id")
    cm.g.user = None
    if writer_id is not None:
        cm.g.user = database().execute("SELECT * FROM writer WHERE id = ?", (writer_id,)).fetchone()
    return get_response(event)


@bp.route("/join", methods=["GET", "POST"], content_types=FORM_PAGE_CONTENT_TYPES)
def join():
    name = ""
    if bp.current_request.method == "POST":
        form = cm.form()
        name, password = form["name"].strip(), form["password"]
        if not name:
            cm.flash("Choose a name.")
        elif len(password) < 8:
            cm.flash("Choose a password of at least 8 characters.")
        else:
            try:
                with database() as db:
                    db.execute(
                        "INSERT INTO writer (name, password_hash) VALUES (?, ?)",
                        (name, hash_password(password)),
                    )
            except sqlite3.IntegrityError:
                cm.flash(f"The name {name} is taken.")
            else:
                cm.flash(f"Welcome, {name}: sign in to write notes.")
                return cm.redirect(cm.url_for("account.sign_in"), 303)
    return cm.html(cm.render_template("account/form.html", heading="Join", name=name))


@bp.route("/sign-in", methods=["GET", "POST"], content_types=FORM_PAGE_CONTENT_TYPES)
def sign_in():
    name = ""
    if bp.current_request.method == "POST":
        form = cm.form()
        name = form["name"].strip()
        writer = database().execute("SELECT * FROM writer WHERE name = ?", (name,)).fetchone()
        if writer is None or not password_matches(writer["password_hash"], form["password"]):
            cm.flash("That name and password do not match.")
        else:
            cm.session.clear()
            cm.session["writer_id"] = writer["id"]
            return cm.redirect(cm.url_for("notes.index"), 303)
    return cm.html(cm.render_template("account/form.html", heading="Sign in", name=name))


@bp.route("/sign-out", methods=["POST"], content_types=FORM_CONTENT_TYPES)
def sign_out():
    cm.session.clear()
    return cm.redirect(cm.url_for("notes.index"), 303)
