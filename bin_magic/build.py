#!/usr/bin/env python3
"""Regenerate and verify the bundled libmagic files in ``bin_magic/``.

Usage::

    python bin_magic/build.py            # download the wheels, extract, verify, install
    python bin_magic/build.py --check    # verify the committed files only (no network)

The files come from the ``pylibmagic`` wheels (manylinux2014, x86_64 and aarch64),
which ship ``libmagic.so.1`` and ``magic.mgc``. Every extracted file is checked
against the committed ``SHA256SUMS`` (``sha256sum -c`` format) before anything in
the target directory is replaced, so a rebuild can never silently change the
binaries. ``--update-sums`` is the deliberate way to accept new files (e.g. after a
version bump of ``pylibmagic``).

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "pylibmagic"
VERSION = "0.5.0"
# The wheels are tagged py3-none, so any --python-version gives the same files;
# 3.11 is pinned only so that pip's platform/ABI resolution is reproducible.
PYTHON_VERSION = "3.11"

# arch directory -> (pip --platform, wheel file name, wheel SHA-256)
WHEELS: dict[str, tuple[str, str, str]] = {
    "x86_64": (
        "manylinux2014_x86_64",
        "pylibmagic-0.5.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "24b5bb791d42653d2668913c7b9a789b5458a2fff09d0ec3c8af33a1204eea6a",
    ),
    "aarch64": (
        "manylinux2014_aarch64",
        "pylibmagic-0.5.0-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "e8614c1e9d7bb0c6b6989646e385a514acb111fed9ec64f50aaf0e21dcf7b7bb",
    ),
}

WHEEL_LIB = "pylibmagic/libmagic.so.1"
WHEEL_MGC = "pylibmagic/magic.mgc"
WHEEL_LICENSE = f"pylibmagic-{VERSION}.dist-info/licenses/LICENSE"

SUMS_NAME = "SHA256SUMS"
# Files every valid bin_magic directory must list in SHA256SUMS.
REQUIRED = ("x86_64/libmagic.so.1", "aarch64/libmagic.so.1")
# Committed files the wheels do not provide: the wheels ship pylibmagic's licence
# but not libmagic's, so file(1)'s COPYING is kept in the repository by hand.
STATIC = ("licenses/libmagic-COPYING",)
DEFAULT_DIR = Path(__file__).resolve().parent


class BuildError(Exception):
    """A problem that ends the build with a message and a non-zero exit."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sums(sums_path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file into {relative path: hex digest}."""
    if not sums_path.is_file():
        raise BuildError(f"{sums_path} does not exist")
    sums: dict[str, str] = {}
    for lineno, raw in enumerate(sums_path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise BuildError(f"{sums_path}:{lineno}: malformed line {raw!r}")
        digest, name = parts[0].lower(), parts[1].lstrip("*")
        if name.startswith("/") or ".." in Path(name).parts:
            raise BuildError(f"{sums_path}:{lineno}: path {name!r} leaves the directory")
        sums[name] = digest
    return sums


def write_sums(sums_path: Path, root: Path, names: list[str]) -> None:
    lines = [f"{sha256_file(root / name)}  {name}\n" for name in sorted(names)]
    sums_path.write_text("".join(lines), encoding="utf-8")


def verify(root: Path, sums: dict[str, str]) -> list[str]:
    """Return a list of human-readable problems (empty when everything matches)."""
    problems = []
    for name in REQUIRED + STATIC:
        if name not in sums:
            problems.append(f"{name}: not listed in {SUMS_NAME}")
    if "magic.mgc" not in sums and not all(f"{a}/magic.mgc" in sums for a in WHEELS):
        problems.append(f"magic.mgc: not listed in {SUMS_NAME}")
    for name, expected in sorted(sums.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing (expected sha256 {expected})")
            continue
        actual = sha256_file(path)
        if actual != expected:
            problems.append(
                f"{name}: sha256 mismatch\n    expected {expected}\n    actual   {actual}"
            )
    return problems


def check(root: Path) -> int:
    sums_path = root / SUMS_NAME
    sums = read_sums(sums_path)
    problems = verify(root, sums)
    if problems:
        print(f"bin_magic check FAILED in {root}:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        print(
            "The bundled libmagic files do not match SHA256SUMS. Restore them "
            "(git checkout bin_magic) or rebuild with `python bin_magic/build.py`.",
            file=sys.stderr,
        )
        return 1
    print(f"bin_magic check OK: {len(sums)} files match {sums_path}")
    return 0


def download_wheels(dest: Path) -> None:
    for platform, wheel_name, _ in WHEELS.values():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            platform,
            "--python-version",
            PYTHON_VERSION,
            "--dest",
            str(dest),
            f"{PACKAGE}=={VERSION}",
        ]
        print("+", " ".join(cmd), flush=True)
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            raise BuildError(f"pip download failed for {platform} (exit {result.returncode})")
        if not (dest / wheel_name).is_file():
            got = ", ".join(sorted(p.name for p in dest.glob("*.whl"))) or "nothing"
            raise BuildError(f"pip did not produce {wheel_name} (got: {got})")


def read_member(wheel: zipfile.ZipFile, wheel_name: str, member: str) -> bytes:
    try:
        return wheel.read(member)
    except KeyError:
        raise BuildError(f"{wheel_name} has no {member}") from None


def extract(wheel_dir: Path, stage: Path) -> list[str]:
    """Extract the files from the wheels in ``wheel_dir`` into ``stage``.

    Returns the relative names written. Wheel hashes are checked first.
    """
    mgcs: dict[str, bytes] = {}
    licences: dict[str, bytes] = {}
    written: list[str] = []
    for arch, (_, wheel_name, wheel_sha) in WHEELS.items():
        wheel_path = wheel_dir / wheel_name
        if not wheel_path.is_file():
            raise BuildError(f"wheel {wheel_name} not found in {wheel_dir}")
        actual = sha256_file(wheel_path)
        if actual != wheel_sha:
            raise BuildError(
                f"wheel {wheel_name}: sha256 mismatch\n    expected {wheel_sha}\n"
                f"    actual   {actual}"
            )
        try:
            with zipfile.ZipFile(wheel_path) as wheel:
                lib = read_member(wheel, wheel_name, WHEEL_LIB)
                mgcs[arch] = read_member(wheel, wheel_name, WHEEL_MGC)
                licences[arch] = read_member(wheel, wheel_name, WHEEL_LICENSE)
        except zipfile.BadZipFile as exc:
            raise BuildError(f"{wheel_name} is not a valid wheel: {exc}") from None
        (stage / arch).mkdir(parents=True, exist_ok=True)
        (stage / arch / "libmagic.so.1").write_bytes(lib)
        written.append(f"{arch}/libmagic.so.1")

    if len(set(mgcs.values())) == 1:
        (stage / "magic.mgc").write_bytes(next(iter(mgcs.values())))
        written.append("magic.mgc")
    else:
        print(
            "NOTE: the wheels' magic.mgc files differ; keeping one per architecture",
            file=sys.stderr,
        )
        for arch, data in mgcs.items():
            (stage / arch / "magic.mgc").write_bytes(data)
            written.append(f"{arch}/magic.mgc")

    (stage / "licenses").mkdir(exist_ok=True)
    if len(set(licences.values())) == 1:
        (stage / "licenses" / "pylibmagic-LICENSE").write_bytes(next(iter(licences.values())))
        written.append("licenses/pylibmagic-LICENSE")
    else:
        for arch, data in licences.items():
            (stage / "licenses" / f"pylibmagic-LICENSE.{arch}").write_bytes(data)
            written.append(f"licenses/pylibmagic-LICENSE.{arch}")
    return written


def install(stage: Path, root: Path, names: list[str]) -> None:
    for name in names:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(stage / name, tmp)
        os.replace(tmp, target)


def build(root: Path, wheel_dir: Path | None, update_sums: bool) -> int:
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bin_magic-") as tmp:
        tmp_path = Path(tmp)
        if wheel_dir is None:
            wheel_dir = tmp_path / "wheels"
            wheel_dir.mkdir()
            download_wheels(wheel_dir)
        stage = tmp_path / "stage"
        stage.mkdir()
        names = extract(wheel_dir, stage)

        sums_path = root / SUMS_NAME
        if update_sums:
            install(stage, root, names)
            # Files that are committed but not produced by the wheels (the libmagic
            # licence) stay listed.
            missing = [n for n in STATIC if not (root / n).is_file()]
            if missing:
                raise BuildError(f"missing committed file(s): {', '.join(missing)}")
            write_sums(sums_path, root, names + list(STATIC))
            print(f"wrote {sums_path}; review and commit the changes")
            return check(root)

        sums = read_sums(sums_path)
        problems = []
        for name in names:
            if name not in sums:
                problems.append(f"{name}: produced by the wheels but not listed in {SUMS_NAME}")
                continue
            actual = sha256_file(stage / name)
            if actual != sums[name]:
                problems.append(
                    f"{name}: sha256 mismatch\n    expected {sums[name]}\n    actual   {actual}"
                )
        if problems:
            print(
                "bin_magic build FAILED: the extracted files do not match SHA256SUMS:",
                file=sys.stderr,
            )
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            print(
                f"Nothing in {root} was changed. If the new files are intended, rerun "
                "with --update-sums and commit the result.",
                file=sys.stderr,
            )
            return 1
        install(stage, root, names)
        print(f"extracted {len(names)} files into {root}")
    return check(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="only verify the committed files against SHA256SUMS (no download)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="the bin_magic directory to build or check (default: this script's directory)",
    )
    parser.add_argument(
        "--wheel-dir",
        type=Path,
        default=None,
        help="use wheels already in this directory instead of running pip download",
    )
    parser.add_argument(
        "--update-sums",
        action="store_true",
        help="accept the extracted files and rewrite SHA256SUMS (after a version bump)",
    )
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    try:
        if args.check:
            return check(root)
        return build(root, args.wheel_dir, args.update_sums)
    except BuildError as exc:
        print(f"bin_magic: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
