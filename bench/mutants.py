"""Mutation testing of the security-critical code: would the suite notice a one-line bug?

``python bench/mutants.py`` copies the repository to a temporary folder, and for each
mutant below (one deliberate single-line bug in the CSRF, session, cookie, privacy,
front-door, payload-limit, form or task code) writes the mutated module there and runs
the security test files with ``-x``. A failing run kills the mutant; a passing one
lets it survive. The score is killed / total. A report, not a test.

``--without 'test_hostile*'`` leaves test files out (the suite before issue 25);
``--new-code`` adds the mutants of the code issue 25 added; ``--full`` confirms
survivors against the whole suite (``-m "not e2e"``); ``--json`` writes the results.
Each mutant's ``old`` text must occur exactly once in the module: a mutant that no
longer applies is reported as stale, never silently skipped.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
MODULE = "chalice_http_toolkit.py"
logger = logging.getLogger("mutants")

#: The test files that guard the code the mutants touch (``-x``: the first failure kills).
SECURITY_TESTS = [
    "test_hostile_settings.py",
    "test_hostile_sessions.py",
    "test_hostile_input.py",
    "test_hostile_survivors.py",
    "test_sessions.py",
    "test_forms.py",
    "test_security.py",
    "test_frontdoors.py",
    "test_cdn_personal.py",
    "test_pipeline.py",
    "test_never_wrong.py",
    "test_binary.py",
    "test_tasks.py",
    "test_headers.py",
    "test_exchange.py",
]


class Mutant(NamedTuple):
    """One deliberate bug: ``old`` (exact module text, once) becomes ``new``."""

    name: str
    area: str
    old: str
    new: str
    new_code: bool = False  # in code issue 25 added (no "before" score)


MUTANTS = [
    # -- CSRF ----------------------------------------------------------------------------
    Mutant(
        "csrf-token-prefix",
        "csrf",
        "return a.isascii() and b.isascii() and hmac.compare_digest(a, b)",
        "return b.startswith(a)",
    ),
    Mutant(
        "csrf-same-site-passes",
        "csrf",
        'if site.strip().lower() in ("same-origin", "none"):',
        'if site.strip().lower() in ("same-origin", "none", "same-site"):',
    ),
    Mutant(
        "csrf-origin-host-prefix",
        "csrf",
        "origin_host in (host, _default_port(host, origin)):",
        "origin_host.startswith(host):",
    ),
    Mutant(
        "csrf-default-ports-swapped",
        "csrf",
        'port = "443" if origin.lower().startswith("https:") else "80"',
        'port = "80" if origin.lower().startswith("https:") else "443"',
    ),
    Mutant(
        "csrf-text-plain-skips-token",
        "csrf",
        "if media_type not in _FORM_TYPES:\n            return None",
        "if media_type not in FORM_CONTENT_TYPES:\n            return None",
    ),
    Mutant(
        "csrf-delete-not-checked",
        "csrf",
        '_UNSAFE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))',
        '_UNSAFE_METHODS = frozenset(("POST", "PUT", "PATCH"))',
    ),
    Mutant(
        "csrf-every-route-exempt",
        "csrf",
        "return entry is not None and getattr(entry.view_function, _CSRF_EXEMPT, False)",
        "return entry is not None or getattr(entry.view_function, _CSRF_EXEMPT, False)",
    ),
    # -- sessions -----------------------------------------------------------------------
    Mutant(
        "session-never-expires",
        "session",
        "if now - issued > self.max_age:",
        "if now - issued > self.max_age * 1000:",
    ),
    Mutant(
        "session-future-timestamps-accepted",
        "session",
        "if issued < 0 or issued > now + 300:",
        "if issued < 0:",
    ),
    Mutant(
        "session-signed-with-oldest-key",
        "session",
        "signature = base64.urlsafe_b64encode(self._signature(self.keys[0], message))",
        "signature = base64.urlsafe_b64encode(self._signature(self.keys[-1], message))",
    ),
    Mutant(
        "session-size-limit-loose",
        "session",
        "        if size > SESSION_COOKIE_LIMIT:\n            raise SessionTooLargeError(",
        "        if size > SESSION_COOKIE_LIMIT + 8:\n            raise SessionTooLargeError(",
    ),
    Mutant(
        "session-bad-cookie-kept",
        "session",
        "session.modified = bool(cookie) and data is None",
        "session.modified = False",
    ),
    Mutant(
        "session-array-accepted",
        "session",
        "        if not isinstance(data, dict):\n            logger.warning",
        "        if not isinstance(data, (dict, list)):\n            logger.warning",
    ),
    Mutant(
        "session-logout-keeps-cookie",
        "session",
        "    elif cm.session_cookie in exchange.cookies(read=False):",
        "    elif cm.session_cookie in exchange.cookies(read=False) and False:",
    ),
    # -- cookies ------------------------------------------------------------------------
    Mutant(
        "cookie-last-duplicate-wins",
        "cookie",
        "if not equals or not re.fullmatch(_COOKIE_NAME, name) or name in cookies:",
        "if not equals or not re.fullmatch(_COOKIE_NAME, name):",
    ),
    Mutant(
        "cookie-httponly-inverted",
        "cookie",
        '    if httponly:\n        parts.append("HttpOnly")',
        '    if not httponly:\n        parts.append("HttpOnly")',
    ),
    Mutant(
        "cookie-samesite-none-insecure",
        "cookie",
        'if canonical == "None" and not secure:',
        'if canonical == "None" and not secure and httponly:',
    ),
    Mutant(
        "cookie-value-unchecked",
        "cookie",
        '_COOKIE_VALUE = r"[\\x21\\x23-\\x2b\\x2d-\\x3a\\x3c-\\x5b\\x5d-\\x7e]*"',
        '_COOKIE_VALUE = r"[\\x20-\\x7e]*"',
    ),
    # -- privacy --------------------------------------------------------------------------
    Mutant(
        "privacy-session-request-304",
        "privacy",
        "            if sent or session.modified:",
        "            if session.modified:",
    ),
    Mutant(
        "privacy-private-keeps-etag",
        "privacy",
        "etag = None if private else offer.etag",
        "etag = offer.etag",
    ),
    Mutant(
        "privacy-make-private-keeps-validators",
        "privacy",
        'for name in ("Cache-Control", "ETag", "Last-Modified", "Expires"):',
        'for name in ("Cache-Control",):',
    ),
    Mutant(
        "privacy-cookies-read-not-personal",
        "privacy",
        "        if read:\n            self.cookies_read = True",
        "        if read and False:\n            self.cookies_read = True",
    ),
    Mutant(
        "privacy-lower-case-set-cookie-public",
        "privacy",
        'return "set-cookie" in map(str.lower, headers)',
        'return "Set-Cookie" in headers',
    ),
    # -- front doors ------------------------------------------------------------------------
    Mutant(
        "frontdoor-path-decoded-twice",
        "frontdoor",
        '[unquote(part) if "%" in part',
        '[unquote(unquote(part)) if "%" in part',
    ),
    Mutant(
        "frontdoor-secret-last-comparison-wins",
        "frontdoor",
        "matched |= hmac.compare_digest(value, secret)",
        "matched = hmac.compare_digest(value, secret)",
    ),
    Mutant(
        "frontdoor-secret-header-kept-in-any-case",
        "frontdoor",
        "copy[field] = {k: v for k, v in copy[field].items() if str(k).lower() != wanted}",
        "copy[field] = {k: v for k, v in copy[field].items() if str(k) != wanted}",
    ),
    Mutant(
        "frontdoor-secret-check-skipped",
        "frontdoor",
        "        elif secrets:\n",
        "        elif secrets and False:\n",
    ),
    # -- payload and form limits ------------------------------------------------------------
    Mutant(
        "payload-characters-not-bytes",
        "payload",
        "            size = len(json.dumps(body))",
        "            size = len(body)",
    ),
    Mutant(
        "payload-base64-not-counted",
        "payload",
        "        size = (len(body) + 2) // 3 * 4",
        "        size = len(body)",
    ),
    Mutant(
        "payload-limit-off-for-pages",
        "payload",
        "if size > LAMBDA_RESPONSE_LIMIT:\n        return _too_large_answer(size, debug, fixed",
        "if size > LAMBDA_RESPONSE_LIMIT * 2:\n        return _too_large_answer(size, debug, fixed",
    ),
    Mutant(
        "form-body-limit-doubled",
        "payload",
        "if len(body) > limits.max_bytes:\n        raise FormError(413",
        "if len(body) > limits.max_bytes * 2:\n        raise FormError(413",
    ),
    Mutant(
        "form-field-count-unbounded",
        "payload",
        'if body.count(b"&") >= limits.max_fields:',
        'if body.count(b"&") >= limits.max_fields * 100:',
    ),
    Mutant(
        "form-base64-limit-loose",
        "payload",
        "len(raw) > limits.max_bytes * 4 // 3 + 4:",
        "len(raw) > limits.max_bytes * 4:",
    ),
    # -- code issue 25 added ---------------------------------------------------------------
    Mutant(
        "new-any-part-charset",
        "forms",
        "    if codec not in _FORM_CHARSETS:\n",
        "    if codec not in _FORM_CHARSETS and False:\n",
        True,
    ),
    Mutant(
        "new-nul-only-when-alone",
        "forms",
        'if any("\\0" in text for text in texts):',
        'if any("\\0" == text for text in texts):',
        True,
    ),
    Mutant(
        "new-host-prefix-path-unchecked",
        "cookie",
        'if lowered.startswith("__host-") and (domain is not None or path != "/"):',
        'if lowered.startswith("__host-") and domain is not None:',
        True,
    ),
    Mutant(
        "new-max-age-unbounded",
        "cookie",
        "if not -_COOKIE_MAX_AGE_LIMIT <= max_age <= _COOKIE_MAX_AGE_LIMIT:",
        "if not -_COOKIE_MAX_AGE_LIMIT <= max_age:",
        True,
    ),
    Mutant(
        "new-session-size-without-name",
        "session",
        "return len(self.cookie_name) + len(payload) + 1 + 10 + 1 + 43",
        "return len(payload) + 1 + 10 + 1 + 43",
        True,
    ),
    Mutant(
        "new-flash-dropped-first-not-largest",
        "session",
        "largest = max(range(len(flashes)), key=lambda index: len(json.dumps(flashes[index])))",
        "largest = 0",
        True,
    ),
    Mutant(
        "new-short-keys-accepted",
        "session",
        "        if len(key) < 32:\n",
        "        if len(key) < 16:\n",
        True,
    ),
    Mutant(
        "new-placeholder-keys-accepted",
        "session",
        "if any(word in words for word in _PLACEHOLDER_KEY_WORDS):",
        "if False:",
        True,
    ),
    Mutant(
        "new-regenerate-keeps-token",
        "session",
        "        self._data.clear()\n        self._data[_CSRF_KEY] = secrets.token_urlsafe(32)",
        "        token = self._data.get(_CSRF_KEY) or secrets.token_urlsafe(32)\n"
        "        self._data.clear()\n        self._data[_CSRF_KEY] = token",
        True,
    ),
    Mutant(
        "new-blank-origin-secret-skipped",
        "frontdoor",
        "        if not isinstance(secret, str) or not secret.strip():\n            raise",
        "        if not isinstance(secret, str):\n            raise",
        True,
    ),
    Mutant(
        "new-surrogate-origin-header-encoded",
        "frontdoor",
        "        if isinstance(value, str) and value.isascii()\n",
        "        if isinstance(value, str)\n",
        True,
    ),
    Mutant(
        "new-sqs-39-digits",
        "tasks",
        "    if digits > 38:\n",
        "    if digits > 39:\n",
        True,
    ),
    Mutant(
        "new-sqs-nan-passes",
        "tasks",
        'if not re.fullmatch(r"[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?", text):',
        'if not re.fullmatch(r"[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?|nan|inf", text):',
        True,
    ),
    Mutant(
        "new-multipart-missing-json-500",
        "forms",
        "        raise _multipart_missing() from None",
        "        raise ImportError('multipart') from None",
        True,
    ),
]


def _copy_repository(target: Path) -> None:
    shutil.copytree(
        ROOT,
        target,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"
        ),
        dirs_exist_ok=True,
    )


def _pytest(
    copy: Path, tests: list[str], timeout: int, *, first_failure: bool = True
) -> tuple[bool, float, str]:
    """Run ``tests`` in ``copy``: (passed, seconds, the last line of output)."""
    command = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:randomly"]
    command += ["-x"] if first_failure else []
    command += ["-p", "no:cacheprovider", "-m", "not e2e", *tests]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - started, "timed out (counted as killed)"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not first_failure:  # the failing tests' ids, for --deselect
        failed = [line.split()[1] for line in lines if line.startswith("FAILED ")]
        return done.returncode == 0, time.perf_counter() - started, " ".join(failed)
    return done.returncode == 0, time.perf_counter() - started, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--without", action="append", default=[], help="test-file glob to omit")
    parser.add_argument("--new-code", action="store_true", help="add the mutants of new code")
    parser.add_argument("--only", action="append", default=[], help="run these mutants only")
    parser.add_argument("--full", action="store_true", help="confirm survivors on the suite")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    source = (ROOT / MODULE).read_text()
    mutants = [m for m in MUTANTS if args.new_code or not m.new_code]
    if args.only:
        mutants = [m for m in mutants if m.name in args.only]
    stale = [m.name for m in mutants if source.count(m.old) != 1]
    if stale:
        parser.error(f"mutants that no longer apply (text not found once): {', '.join(stale)}")
    tests = [
        f"tests/{name}"
        for name in SECURITY_TESTS
        if (ROOT / "tests" / name).exists()
        and not any(fnmatch.fnmatch(name, pattern) for pattern in args.without)
    ]
    everything = [
        f"tests/{path.name}"
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        if not any(fnmatch.fnmatch(path.name, pattern) for pattern in args.without)
    ]
    results = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as folder:
        copy = Path(folder)
        _copy_repository(copy)
        passed, seconds, last = _pytest(copy, tests, args.timeout)
        if not passed:
            logger.error("the unmutated module fails the tests: %s", last)
            return 2
        logger.info("baseline: %s (%.0f s), %d test files", last, seconds, len(tests))
        if args.full:  # tests that fail unmutated (an unrelated bug) must not kill mutants
            _, seconds, failing = _pytest(copy, everything, args.timeout * 4, first_failure=False)
            logger.info("whole suite unmutated (%.0f s); failing, left out: %s", seconds, failing)
            everything += [f"--deselect={test}" for test in failing.split()]
        for mutant in mutants:
            (copy / MODULE).write_text(source.replace(mutant.old, mutant.new))
            survived, seconds, last = _pytest(copy, tests, args.timeout)
            if survived and args.full:
                survived, seconds, last = _pytest(copy, everything, args.timeout * 4)
            outcome = "SURVIVED" if survived else "killed"
            logger.info(
                "%-9s %-42s %-9s %5.0f s  %s", outcome, mutant.name, mutant.area, seconds, last
            )
            results.append({"mutant": mutant.name, "area": mutant.area, "survived": survived})
        (copy / MODULE).write_text(source)
    killed = sum(not result["survived"] for result in results)
    if not results:
        logger.info("no mutant selected")
        return 0
    logger.info(
        "score: %d of %d killed (%.0f%%)", killed, len(results), 100 * killed / len(results)
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
