"""Field notes on chalice-http-toolkit: the same site as ../flask_site, on AWS Chalice."""

from chalicelib import account, notes
from chalicelib.web import app, cm, create_tables

app.register_blueprint(account.bp, name_prefix="account.", url_prefix="/account")
app.register_blueprint(notes.bp, name_prefix="notes.")
cm.register_not_found_routes("404.html")  # API Gateway's unknown paths: the site's 404 page
create_tables()
