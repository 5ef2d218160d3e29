"""The notes: everyone reads them, writers write, change and delete their own."""

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from fieldnotes.account import login_required
from fieldnotes.db import database

bp = Blueprint("notes", __name__)


@bp.route("/")
def index():
    notes = database().execute(
        "SELECT note.*, writer.name FROM note JOIN writer ON writer.id = note.writer_id"
        " ORDER BY note.written DESC, note.id DESC"
    )
    return render_template("notes/list.html", notes=notes.fetchall())


def own_note(note_id: int):
    """The note ``note_id`` if the signed-in writer wrote it; 404 or 403 otherwise."""
    note = database().execute("SELECT * FROM note WHERE id = ?", (note_id,)).fetchone()
    if note is None:
        abort(404, f"There is no note {note_id}.")
    if note["writer_id"] != g.user["id"]:
        abort(403, "That note is someone else's.")
    return note


def submitted_note() -> tuple[dict, bool]:
    """The note in the posted form, and whether it may be saved (it has a heading)."""
    note = {"heading": request.form["heading"].strip(), "text": request.form["text"].strip()}
    if not note["heading"]:
        flash("A note needs a heading.")
    return note, bool(note["heading"])


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    note = {"heading": "", "text": ""}
    if request.method == "POST":
        note, valid = submitted_note()
        if valid:
            with database() as db:
                db.execute(
                    "INSERT INTO note (writer_id, heading, text) VALUES (?, ?, ?)",
                    (g.user["id"], note["heading"], note["text"]),
                )
            return redirect(url_for("notes.index"), 303)
    return render_template("notes/form.html", heading="New note", note=note)


@bp.route("/<int:note_id>/edit", methods=["GET", "POST"])
@login_required
def edit(note_id):
    note = own_note(note_id)
    if request.method == "POST":
        changed, valid = submitted_note()
        if valid:
            with database() as db:
                db.execute(
                    "UPDATE note SET heading = ?, text = ? WHERE id = ?",
                    (changed["heading"], changed["text"], note["id"]),
                )
            return redirect(url_for("notes.index"), 303)
        note = {"id": note["id"], **changed}
    return render_template("notes/form.html", heading="Edit note", note=note)


@bp.route("/<int:note_id>/delete", methods=["POST"])
@login_required
def delete(note_id):
    note = own_note(note_id)
    with database() as db:
        db.execute("DELETE FROM note WHERE id = ?", (note["id"],))
    flash(f"Deleted “{note['heading']}”.")
    return redirect(url_for("notes.index"), 303)
