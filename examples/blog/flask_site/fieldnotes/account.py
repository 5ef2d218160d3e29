"""Joining, signing in and out; the signed-in writer for every request."""

import functools
import sqlite3

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from fieldnotes.db import database

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.before_app_request
def find_writer():
    writer_id = session.get("writer_id")
    g.user = None
    if writer_id is not None:
        g.user = database().execute("SELECT * FROM writer WHERE id = ?", (writer_id,)).fetchone()


def login_required(view):
    """Send a visitor who is not signed in to the sign-in page."""

    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("account.sign_in"))
        return view(**kwargs)

    return wrapped


@bp.route("/join", methods=["GET", "POST"])
def join():
    name = ""
    if request.method == "POST":
        name, password = request.form["name"].strip(), request.form["password"]
        if not name:
            flash("Choose a name.")
        elif len(password) < 8:
            flash("Choose a password of at least 8 characters.")
        else:
            try:
                with database() as db:
                    db.execute(
                        "INSERT INTO writer (name, password_hash) VALUES (?, ?)",
                        (name, generate_password_hash(password)),
                    )
            except sqlite3.IntegrityError:
                flash(f"The name {name} is taken.")
            else:
                flash(f"Welcome, {name}: sign in to write notes.")
                return redirect(url_for("account.sign_in"), 303)
    return render_template("account/form.html", heading="Join", name=name)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    name = ""
    if request.method == "POST":
        name = request.form["name"].strip()
        writer = database().execute("SELECT * FROM writer WHERE name = ?", (name,)).fetchone()
        if writer is None or not check_password_hash(
            writer["password_hash"], request.form["password"]
        ):
            flash("That name and password do not match.")
        else:
            session.clear()
            session["writer_id"] = writer["id"]
            return redirect(url_for("notes.index"), 303)
    return render_template("account/form.html", heading="Sign in", name=name)


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    session.clear()
    return redirect(url_for("notes.index"), 303)
