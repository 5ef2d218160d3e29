import hashlib
import os
import secrets

from chalice import Chalice

from chalicelib.chalice_http_toolkit import (
    FORM_CONTENT_TYPES,
    CloudFront,
    ContentManager,
    lambda_handler,
    register_keep_warm,
)

app = Chalice(app_name="$name")
HERE = os.path.dirname(os.path.abspath(__file__))

# Sessions, flash messages and CSRF tokens are signed with SECRET_KEY. Set it in the
# function's environment (e.g. from a secret store), never in the source. Without it,
# `chalice local` makes a key per run (sessions end with the process); deployed, a
# page that uses the session answers 500 and logs that the key is missing.
SECRET_KEY = os.environ.get("SECRET_KEY")
if SECRET_KEY is None and "AWS_LAMBDA_FUNCTION_NAME" not in os.environ:
    SECRET_KEY = secrets.token_urlsafe(32)

cm = ContentManager(
    os.path.join(HERE, "chalicelib", "templates"),
    os.path.join(HERE, "chalicelib", "static"),
    app,
    secret_key=SECRET_KEY,
    security_headers=True,  # HSTS, Referrer-Policy, frame-ancestors (toolkit: docs/api.md)
)
cm.set_static_handler_prefix("/static")  # static() in templates: content-hashed URLs
cf = CloudFront(cm, app)  # ETags, 304 Not Modified and Cache-Control
cm.register_static_routes()  # GET/HEAD /static/{p0}, /static/{p0}/{p1}, ...
# A schedule (its own Lambda function, looked up as app.keep_warm) that invokes the
# API handler with a warm-up event every 5 minutes; .chalice/policy-prod.json lets it.
keep_warm = register_keep_warm(app, cm)


@app.route("/", methods=["GET", "HEAD"])
def index():
    return cf.template("index.html", title="$name")


#: Uploads larger than this are refused with a message (Lambda takes 6 MB per request).
MAX_ATTACHMENT = 1024 * 1024


@app.route("/contact", methods=["GET", "HEAD"])
def contact():
    return cf.template("contact.html", errors={}, values={})


@app.route("/contact", methods=["POST"], content_types=FORM_CONTENT_TYPES)
def contact_post():
    # The toolkit has already checked the request's origin and CSRF token.
    form = cm.form()
    values = {name: form.get(name, "").strip() for name in ("name", "email", "message")}
    errors = {}
    if not values["name"]:
        errors["name"] = "Please tell us your name."
    if "@" not in values["email"]:
        errors["email"] = "Please give an email address we can answer."
    if not values["message"]:
        errors["message"] = "Please write a message."
    attachment = form.files.get("attachment")
    if attachment is not None and attachment.filename and attachment.size > MAX_ATTACHMENT:
        errors["attachment"] = "The attachment is larger than 1 MB."
    if errors:
        return cf.template("contact.html", status_code=422, errors=errors, values=values)
    received = ""
    if attachment is not None and attachment.filename:
        digest = hashlib.sha256(attachment.data).hexdigest()[:16]
        received = f" We received {attachment.filename} ({attachment.size} bytes, {digest})."
    app.log.info("message from %s (%d characters)", values["email"], len(values["message"]))
    cm.flash(f"Thank you, {values['name']}: your message is on its way.{received}", "success")
    return cm.redirect(cm.url_for("contact"), 303)  # POST, redirect, GET: no resubmission


# Last: catch-all routes that render the 404 page for unknown paths.
cm.register_not_found_routes("404.html")

# The handler for a Function URL, an HTTP API or an ALB (the REST API calls app.app):
# .chalice/package-merge-function-url.json points the function at app.handler.
handler = lambda_handler(app)
