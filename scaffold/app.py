import os

from chalice import Chalice

from chalicelib.chalice_http_toolkit import (
    CloudFront,
    ContentManager,
    lambda_handler,
    register_keep_warm,
)

app = Chalice(app_name="$name")
HERE = os.path.dirname(os.path.abspath(__file__))

cm = ContentManager(
    os.path.join(HERE, "chalicelib", "templates"), os.path.join(HERE, "chalicelib", "static"), app
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


# Last: catch-all routes that render the 404 page for unknown paths.
cm.register_not_found_routes("404.html")

# The handler for a Function URL, an HTTP API or an ALB (the REST API calls app.app):
# .chalice/package-merge-function-url.json points the function at app.handler.
handler = lambda_handler(app)
