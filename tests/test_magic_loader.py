"""The libmagic loader: the bundled library by absolute path, the system one, or none.

A process can load libmagic once, so every mode runs in a fresh subprocess and
reports what it sniffed, which libmagic is mapped (/proc/self/maps) and what it logged.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import textwrap
from pathlib import Path

import pytest

import chalice_http_toolkit as toolkit

from conftest import ROOT
from localserver import run_python

BIN_MAGIC = ROOT / "bin_magic"
MACHINE = platform.machine()
BUNDLED_LIB = BIN_MAGIC / MACHINE / "libmagic.so.1"
BUNDLED_VERSION = 541
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
ICO = bytes.fromhex("00000100010010100000010020006804000016000000") + bytes(40)
SAMPLES = {
    "png": PNG,
    "pdf": b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n",
    "text": b"hello world, plain text\n",
    "xml": b'<?xml version="1.0"?><feed></feed>',
    "empty": b"",
    "unknown": bytes.fromhex("5f3a9c01e2d47b86") * 32,
}
# What the signature table alone answers, and what libmagic adds.
TABLE = {
    "png": "image/png",
    "pdf": "application/pdf",
    "text": "application/octet-stream",
    "xml": "application/octet-stream",
    "empty": "application/octet-stream",
    "unknown": "application/octet-stream",
}
MAGIC = {**TABLE, "text": "text/plain", "xml": "application/xml"}

bundled_only = pytest.mark.skipif(
    not BUNDLED_LIB.is_file(), reason=f"no bundled libmagic for {MACHINE}"
)

PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LOG %(levelname)s %(message)s")
options = json.loads(sys.argv[1])
sys.path.insert(0, options["module_dir"])
if options.get("block_python_magic"):
    sys.modules["magic"] = None  # import magic raises ImportError
if options.get("import_python_magic_first"):
    import magic
import chalice_http_toolkit as toolkit
detector = toolkit.load_libmagic(*options["args"])
again = toolkit.load_libmagic()
samples = {name: bytes.fromhex(data) for name, data in options["samples"].items()}
result = {
    "module": toolkit.__file__,
    "detector": detector is not None,
    "cached": again is detector,
    "sniffed": {name: toolkit.sniff_content_type(data) for name, data in samples.items()},
}
if detector is not None:
    result["version"] = sys.modules["magic"].version()
with open("/proc/self/maps") as maps:
    result["mapped"] = sorted(
        {line.split(None, 5)[5] for line in maps.read().splitlines() if "libmagic" in line}
    )
print(json.dumps(result))
"""


def probe(module_dir: Path, *args: str, **options: bool) -> tuple[dict, str]:
    """Run the loader in a fresh interpreter; its JSON report and its log lines."""
    options_json = json.dumps(
        {
            "module_dir": str(module_dir),
            "args": list(args),
            "samples": {name: data.hex() for name, data in SAMPLES.items()},
            **options,
        }
    )
    done = run_python("-c", PROBE, options_json)
    assert done.returncode == 0, done.stderr
    log = "\n".join(line for line in done.stderr.splitlines() if line.startswith("LOG "))
    return json.loads(done.stdout), log


def system_libmagic_works() -> bool:
    report, _ = probe(ROOT, "/nonexistent-libs")
    return report["detector"]


@pytest.fixture(scope="module")
def system_libmagic() -> bool:
    return system_libmagic_works()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A ``chalicelib/`` with the module and ``libs/`` laid out as ``setup -e magic`` does."""
    chalicelib = tmp_path / "chalicelib"
    (chalicelib / "libs" / MACHINE).mkdir(parents=True)
    shutil.copy(ROOT / "chalice_http_toolkit.py", chalicelib)
    shutil.copy(BUNDLED_LIB, chalicelib / "libs" / MACHINE / "libmagic.so.1")
    shutil.copy(BIN_MAGIC / "magic.mgc", chalicelib / "libs" / "magic.mgc")
    return chalicelib


# ---------------------------------------------------------------------- bundled


@bundled_only
def test_default_directory_is_libs_beside_the_module_and_the_bundled_library_is_mapped(project):
    report, log = probe(project)  # no argument: chalicelib/libs
    assert report["module"] == str(project / "chalice_http_toolkit.py")
    assert report["detector"] and report["cached"]
    bundled = os.path.realpath(project / "libs" / MACHINE / "libmagic.so.1")
    assert report["mapped"] == [bundled]  # not the system's, not both
    assert report["version"] == BUNDLED_VERSION
    assert report["sniffed"] == MAGIC
    assert f"database {project / 'libs' / 'magic.mgc'}" in log
    assert "bundled library" in log


@bundled_only
def test_explicit_directory(tmp_path):
    report, _ = probe(ROOT, str(BIN_MAGIC))
    assert report["mapped"] == [os.path.realpath(BUNDLED_LIB)]
    assert report["version"] == BUNDLED_VERSION
    assert report["sniffed"] == MAGIC


@bundled_only
def test_bundled_database_is_not_given_to_a_libmagic_imported_earlier(project, system_libmagic):
    """python-magic imported first binds the system library, which rejects the v16 database."""
    if not system_libmagic:
        pytest.skip("no system libmagic")
    report, log = probe(project, import_python_magic_first=True)
    assert "python-magic was imported before" in log
    assert report["detector"]
    assert report["version"] != BUNDLED_VERSION
    assert report["sniffed"] == MAGIC


@bundled_only
def test_bundled_library_without_its_database_is_logged(project):
    (project / "libs" / "magic.mgc").unlink()
    report, log = probe(project)
    assert f"no {project / 'libs' / 'magic.mgc'}" in log
    # Whatever the library's compiled-in default gives, sniffing still answers.
    expected = MAGIC if report["detector"] else TABLE
    assert report["sniffed"] == expected


# ---------------------------------------------------------------------- degraded


def test_absent_directory_uses_the_system_libmagic(tmp_path, system_libmagic):
    report, log = probe(ROOT, str(tmp_path / "no-such-libs"))
    assert f"no {tmp_path / 'no-such-libs'}" in log
    assert report["cached"]
    if system_libmagic:
        assert report["detector"]
        assert report["version"] != BUNDLED_VERSION
        assert report["sniffed"] == MAGIC
    else:
        assert report["sniffed"] == TABLE


def test_corrupt_library_is_logged_and_the_bundled_database_not_used(tmp_path, system_libmagic):
    libs = tmp_path / "libs"
    (libs / MACHINE).mkdir(parents=True)
    (libs / MACHINE / "libmagic.so.1").write_bytes(b"\x7fELF garbage, not a library" * 40)
    shutil.copy(BIN_MAGIC / "magic.mgc", libs / "magic.mgc")
    report, log = probe(ROOT, str(libs))
    assert f"cannot load {libs / MACHINE / 'libmagic.so.1'}" in log
    assert str(libs / MACHINE) not in " ".join(report["mapped"])
    # The system library (if any) with its own database: passing the v16 file would fail.
    assert report["detector"] is system_libmagic
    assert report["sniffed"] == (MAGIC if system_libmagic else TABLE)


def test_library_for_another_machine_only(tmp_path, system_libmagic):
    libs = tmp_path / "libs"
    (libs / "some-other-machine").mkdir(parents=True)
    report, log = probe(ROOT, str(libs))
    assert f"no {libs / MACHINE / 'libmagic.so.1'}" in log
    assert report["sniffed"] == (MAGIC if system_libmagic else TABLE)


@pytest.mark.parametrize("libs", ["bundled", "absent"])
def test_without_python_magic_the_signature_table_sniffs(tmp_path, libs):
    directory = str(BIN_MAGIC) if libs == "bundled" else str(tmp_path / "absent")
    report, log = probe(ROOT, directory, block_python_magic=True)
    assert not report["detector"] and report["cached"]
    assert "python-magic unavailable" in log
    assert report["sniffed"] == TABLE


def test_another_directory_after_the_first_load_is_refused_with_a_log_line(tmp_path):
    code = textwrap.dedent(
        f"""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        sys.path.insert(0, {str(ROOT)!r})
        import chalice_http_toolkit as toolkit
        first = toolkit.load_libmagic({str(tmp_path / "a")!r})
        assert toolkit.load_libmagic({str(tmp_path / "b")!r}) is first
        """
    )
    done = run_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path / 'b'} is not used" in done.stderr


def test_module_import_does_not_load_libmagic():
    report_code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import chalice_http_toolkit
        print("magic" in sys.modules, "ctypes" in sys.modules)
        """
    )
    done = run_python("-c", report_code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False"


# ---------------------------------------------------------------------- in process


@pytest.fixture
def in_process_magic():
    if toolkit.load_libmagic() is None:
        pytest.skip("no libmagic in this process")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"#include <stdio.h>\nint main(void) { return 0; }\n", "text/plain"),  # not text/x-c
        (b"import os\n\ndef main():\n    pass\n", "text/plain"),
        (b'<?xml version="1.0"?><a/>', "application/xml"),  # libmagic says text/xml
        (ICO, "image/x-icon"),  # libmagic says image/vnd.microsoft.icon
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),  # libmagic: octet-stream
        (b"%PDF-1.7", "application/pdf"),
        (b"", "application/octet-stream"),
    ],
)
def test_libmagic_answers_in_the_module_names(in_process_magic, data, expected):
    assert toolkit.sniff_content_type(data) == expected


def test_sniffing_never_fails_on_arbitrary_bytes(in_process_magic):
    import random

    generator = random.Random(1234)
    for size in (1, 2, 7, 64, 4096, 100_000):
        data = bytes(generator.randrange(256) for _ in range(size))
        assert "/" in toolkit.sniff_content_type(data)
