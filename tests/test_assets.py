"""Run-time assets: ``ContentManager.asset(bytes)`` and ``CloudFront.asset(get_asset, get_etag)``.

Each case runs twice: with libmagic (python-magic and this machine's library) and
with the signature table alone, as on a Lambda without libmagic.
"""

from __future__ import annotations

import io
import random
import re
from collections import Counter

import pytest
from chalice import Chalice
from chalice.test import Client

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import CloudFront, ContentManager


def _image(kind: str) -> bytes:
    from PIL import Image

    output = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(output, kind)
    return output.getvalue()


SAMPLES = {
    "png": _image("PNG"),
    "jpeg": _image("JPEG"),
    "pdf": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< >>\n%%EOF\n",
    "random": random.Random(7).randbytes(1024),
    "empty": b"",
    "text": b"Plain words, nothing else.\nA second line.\n",
}
EXPECTED = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "pdf": "application/pdf",
    "random": "application/octet-stream",
    "empty": "application/octet-stream",
    "text": None,  # text/plain with libmagic; the signature table cannot tell
}
QUOTED_HASH = re.compile(r'"[0-9a-f]{32}"')


@pytest.fixture(params=["libmagic", "table"])
def mode(request, monkeypatch) -> str:
    if request.param == "libmagic":
        if toolkit.load_libmagic() is None:
            pytest.skip("no libmagic in this process")
    else:
        monkeypatch.setattr(toolkit, "_magic_state", ("(no libmagic)", None))
    return request.param


@pytest.fixture
def site(tmp_path, mode):
    (tmp_path / "templates").mkdir()
    (tmp_path / "static").mkdir()
    app = Chalice(app_name="assets")
    cm = ContentManager(str(tmp_path / "templates"), str(tmp_path / "static"), app)
    cf = CloudFront(cm, app)
    fetched: Counter[str] = Counter()
    versions = {kind: "v1" for kind in SAMPLES}

    @app.route("/asset/{kind}", methods=["GET", "HEAD"])
    def asset(kind):
        return cm.asset(SAMPLES[kind])

    @app.route("/typed/{kind}", methods=["GET"])
    def typed(kind):
        return cm.asset(SAMPLES[kind], headers={"Content-Type": "image/svg+xml"})

    @app.route("/cf/{kind}", methods=["GET", "HEAD"])
    def cf_asset(kind):
        def get_asset() -> bytes:
            fetched[kind] += 1
            return SAMPLES[kind]

        return cf.asset(get_asset, lambda: f"{kind}-{versions[kind]}", cache_control="max-age=60")

    with Client(app) as client:
        yield client, fetched, versions


def expected_type(kind: str, mode: str) -> str:
    if EXPECTED[kind] is None:
        return "text/plain" if mode == "libmagic" else "application/octet-stream"
    return EXPECTED[kind]


@pytest.mark.parametrize("kind", list(SAMPLES))
@pytest.mark.parametrize("route", ["asset", "cf"])
def test_type_is_sniffed_and_marked_nosniff(site, mode, kind, route):
    client, _, _ = site
    response = client.http.get(f"/{route}/{kind}")
    assert response.status_code == 200
    assert response.body == SAMPLES[kind]
    assert response.headers["Content-Type"] == expected_type(kind, mode)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert QUOTED_HASH.fullmatch(response.headers["ETag"])


def test_an_explicit_content_type_wins(site):
    client, _, _ = site
    response = client.http.get("/typed/text")
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("kind", ["png", "random", "empty"])
def test_asset_etag_is_the_content_hash(site, kind):
    client, _, _ = site
    etag = client.http.get(f"/asset/{kind}").headers["ETag"]
    assert etag == f'"{toolkit._digest(SAMPLES[kind])}"'
    assert etag != client.http.get("/asset/pdf").headers["ETag"]


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', "*"],
    ids=["strong", "weak", "list", "star"],
)
@pytest.mark.parametrize("route", ["asset", "cf"])
def test_revalidation_gives_304(site, route, if_none_match):
    client, _, _ = site
    first = client.http.get(f"/{route}/png")
    etag = first.headers["ETag"]
    again = client.http.get(
        f"/{route}/png", headers={"If-None-Match": if_none_match.format(etag=etag)}
    )
    assert again.status_code == 304
    assert again.body == b""
    assert again.headers["ETag"] == etag
    assert "Content-Type" not in again.headers or again.headers["Content-Type"] != "image/png"


def test_other_etag_gives_the_body(site):
    client, _, _ = site
    response = client.http.get("/asset/png", headers={"If-None-Match": '"something-else"'})
    assert (response.status_code, response.body) == (200, SAMPLES["png"])


def test_cloudfront_304_does_not_call_get_asset(site):
    client, fetched, versions = site
    first = client.http.get("/cf/jpeg")
    assert fetched["jpeg"] == 1
    assert first.headers["Cache-Control"] == "max-age=60"
    etag = first.headers["ETag"]
    for method in (client.http.get, client.http.head):
        revalidated = method("/cf/jpeg", headers={"If-None-Match": etag})
        assert revalidated.status_code == 304
        assert revalidated.headers["Cache-Control"] == "max-age=60"
    assert fetched["jpeg"] == 1  # the 304s never fetched the asset

    versions["jpeg"] = "v2"  # the source changed: the old validator no longer matches
    changed = client.http.get("/cf/jpeg", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.body == SAMPLES["jpeg"]
    assert changed.headers["ETag"] != etag
    assert fetched["jpeg"] == 2


def test_cloudfront_etag_is_quoted_and_derived_from_get_etag(site):
    client, _, _ = site
    etag = client.http.get("/cf/png").headers["ETag"]
    assert etag == f'"{toolkit._digest(b"png-v1")}"'


@pytest.mark.parametrize("length", [1, 128, 129, 10_000])
def test_an_asset_version_etag_is_its_digest_memoised_or_not(length):
    """Regression for the memo of version ETags: any version gets the digest of its own
    text, in any order, and only short ones are kept (a bounded LRU)."""
    versions = [f"{n}-" + "v" * length for n in range(3)]
    for version in versions + versions[::-1]:
        expected = f'"{toolkit._digest(version.encode("utf-8", "surrogatepass"))}"'
        assert toolkit._version_etag(version) == expected
    lone = toolkit._digest(b"\xed\xa0\x80")  # a lone surrogate, as surrogatepass encodes it
    assert toolkit._version_etag("\ud800") == f'"{lone}"'
    info = toolkit._short_version_etag.cache_info()
    assert info.maxsize == 1024 and info.currsize <= 1024
    for n in range(3000):
        toolkit._version_etag(f"v{n}")
    assert toolkit._short_version_etag.cache_info().currsize == 1024


def test_head_has_the_headers_and_no_body(site, mode):
    client, _, _ = site
    response = client.http.head("/asset/pdf")
    assert response.status_code == 200
    assert response.body == b""
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
