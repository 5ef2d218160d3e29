"""The notes: everyone reads them, writers write, change and delete their own."""

from chalice import Blueprint

from chalicelib.chalice_http_toolkit import FORM_CONTENT_TYPES, FORM_PAGE_CONTENT_TYPES, abort
from chalicelib.web import cm, database, login_required

bp = Blueprint(__name__)


@bp.route("/")
def index():
    notes = database().execute(
        "SELECT note.*, writer.name FROM note JOIN writer ON writer.id = note.writer_id"
        " ORDER BY note.written DESC, note.id DESC"
    )
    return cm.html(cm.render_template("notes/list.html", notes=notes.fetchall()))


def own_note(note_id: str):
    """The note ``note_id`` if the signed-in writer wrote it; 404 or 403 otherwise."""
    query = "SELECT * FROM note WHERE id = ?"
    note = database().execute(query, (note_id,)).fetchone() if note_id.isdigit() else None
    if note is None:
        abort(404, f"There is no note {note_id}.")
    if note["writer_id"] != cm.g.user["id"]:
        abort(403, "That note is someone else's.")
    return note


def submitted_note() -> tuple[dict, bool]:
    """The note in the posted form, and whether it may be saved (it has a heading)."""
    form = cm.form()
    note = {"heading": form["heading"].strip(), "text": form["text"].strip()}
    if not note["heading"]:
        cm.flash("A note needs a heading.")
    return note, bool(note["heading"])


@bp.route("/new", methods=["GET", "POST"], content_types=FORM_PAGE_CONTENT_TYPES)
@login_required
def new():
    note = {"heading": "", "text": ""}
    if bp.current_request.method == "POST":
        note, valid = submitted_note()
        if valid:
            with database() as db:
                db.execute(
                    "INSERT INTO note (writer_id, heading, text) VALUES (?, ?, ?)",
                    (cm.g.user["id"], note["heading"], note["text"]),
                )
            return cm.redirect(cm.url_for("notes.index"), 303)
    return cm.html(cm.render_template("notes/form.html", heading="New note", note=note))


@bp.route("/{note_id}/edit", methods=["GET", "POST"], content_types=FORM_PAGE_CONTENT_TYPES)
@login_required
def edit(note_id):
    note = own_note(note_id)
    if bp.current_request.method == "POST":
        changed, valid = submitted_note()
        if valid:
            with database() as db:
                db.execute(
                    "UPDATE note SET heading = ?, text = ? WHERE id = ?",
                    (changed["heading"], changed["text"], note["id"]),
                )
            return cm.redirect(cm.url_for("notes.index"), 303)
        note = {"id": note["id"], **changed}
    return cm.html(cm.render_template("notes/form.html", heading="Edit note", note=note))


@bp.route("/{note_id}/delete", methods=["POST"], content_types=FORM_CONTENT_TYPES)
@login_required
def delete(note_id):
    note = own_note(note_id)
    with database() as db:
        db.execute("DELETE FROM note WHERE id = ?", (note["id"],))
    cm.flash(f"Deleted “{note['heading']}”.")
    return cm.redirect(cm.url_for("notes.index"), 303)
