"""The bundled libmagic in bin_magic/: Lambda has no libmagic, so the toolkit ships one.

The ELF checks parse the files with ``struct`` only, so they run anywhere.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import platform
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from localserver import run_python

ROOT = Path(__file__).resolve().parent.parent
BIN_MAGIC = ROOT / "bin_magic"
BUILD = BIN_MAGIC / "build.py"
ARCHES = {"x86_64": 62, "aarch64": 183}  # arch dir -> ELF e_machine (EM_X86_64, EM_AARCH64)
LIBS = {arch: BIN_MAGIC / arch / "libmagic.so.1" for arch in ARCHES}
MGC = BIN_MAGIC / "magic.mgc"
# pylibmagic 0.5.0 builds file(1) 5.41; magic_version() returns 541.
BUNDLED_VERSION = 541
# What Lambda's Amazon Linux images provide; libbz2/liblzma would not be acceptable.
ALLOWED_NEEDED = {"libc.so.6", "libz.so.1"}
MAX_GLIBC = (2, 17)

NATIVE = platform.machine()
native_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or NATIVE not in ARCHES,
    reason=f"no bundled libmagic for {sys.platform}/{NATIVE}",
)


# --------------------------------------------------------------------------- ELF


class Elf:
    """Just enough of a little-endian ELF64 reader for these checks."""

    SHT_DYNAMIC = 6
    SHT_GNU_VERNEED = 0x6FFFFFFE
    DT_NULL, DT_NEEDED, DT_SONAME = 0, 1, 14

    def __init__(self, data: bytes):
        if data[:4] != b"\x7fELF":
            raise ValueError("not an ELF file")
        if data[4] != 2 or data[5] != 1:
            raise ValueError(f"not a little-endian ELF64 file (class {data[4]}, data {data[5]})")
        self.data = data
        (
            _ident,
            self.e_type,
            self.e_machine,
            _version,
            _entry,
            _phoff,
            shoff,
            _flags,
            _ehsize,
            _phentsize,
            _phnum,
            shentsize,
            shnum,
            _shstrndx,
        ) = struct.unpack_from("<16sHHIQQQIHHHHHH", data, 0)
        self.sections = []
        for i in range(shnum):
            fields = struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
            _name, sh_type, _f, _addr, offset, size, link, info, _align, _entsize = fields
            self.sections.append((sh_type, offset, size, link, info))

    def _string(self, strtab_index: int, offset: int) -> str:
        start = self.sections[strtab_index][1] + offset
        end = self.data.index(b"\0", start)
        return self.data[start:end].decode("ascii")

    def _section(self, sh_type: int):
        found = [s for s in self.sections if s[0] == sh_type]
        assert len(found) == 1, f"expected one section of type {sh_type:#x}, found {len(found)}"
        return found[0]

    def dynamic(self) -> tuple[list[str], str | None]:
        """(DT_NEEDED entries, DT_SONAME)."""
        _, offset, size, link, _ = self._section(self.SHT_DYNAMIC)
        needed, soname = [], None
        for pos in range(offset, offset + size, 16):
            tag, val = struct.unpack_from("<qQ", self.data, pos)
            if tag == self.DT_NULL:
                break
            if tag == self.DT_NEEDED:
                needed.append(self._string(link, val))
            elif tag == self.DT_SONAME:
                soname = self._string(link, val)
        return needed, soname

    def version_needs(self) -> dict[str, set[str]]:
        """{library: {version names}} from .gnu.version_r (Elf64_Verneed/Vernaux)."""
        _, offset, _size, link, count = self._section(self.SHT_GNU_VERNEED)
        needs: dict[str, set[str]] = {}
        pos = offset
        for _ in range(count):
            _vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from(
                "<HHIII", self.data, pos
            )
            names = needs.setdefault(self._string(link, vn_file), set())
            aux = pos + vn_aux
            for _ in range(vn_cnt):
                _hash, _flags, _other, vna_name, vna_next = struct.unpack_from(
                    "<IHHII", self.data, aux
                )
                names.add(self._string(link, vna_name))
                aux += vna_next
            pos += vn_next
        return needs


def glibc_versions(elf: Elf) -> list[tuple[int, ...]]:
    versions = []
    for names in elf.version_needs().values():
        for name in names:
            if name.startswith("GLIBC_") and name[6:7].isdigit():
                versions.append(tuple(int(p) for p in name[6:].split(".")))
    return sorted(versions)


def test_elf_reader_rejects_non_elf():
    with pytest.raises(ValueError):
        Elf(MGC.read_bytes()[:64])


# --------------------------------------------------------------------- checksums


def parse_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(None, 1)
            sums[name.strip()] = digest
    return sums


def test_sha256sums_match_the_committed_files():
    sums = parse_sums(BIN_MAGIC / "SHA256SUMS")
    expected = {
        "x86_64/libmagic.so.1",
        "aarch64/libmagic.so.1",
        "magic.mgc",
        "licenses/libmagic-COPYING",
        "licenses/pylibmagic-LICENSE",
    }
    assert set(sums) == expected
    for name, digest in sums.items():
        assert hashlib.sha256((BIN_MAGIC / name).read_bytes()).hexdigest() == digest, name


def test_licences_are_the_expected_texts():
    libmagic = (BIN_MAGIC / "licenses" / "libmagic-COPYING").read_text(encoding="utf-8")
    assert "Ian F. Darwin" in libmagic
    assert "Redistributions in binary form must reproduce" in libmagic
    pylibmagic = (BIN_MAGIC / "licenses" / "pylibmagic-LICENSE").read_text(encoding="utf-8")
    assert "BSD 3-Clause License" in pylibmagic
    assert "Giordon Stark" in pylibmagic


# --------------------------------------------------------------------------- ELF


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_library_is_an_elf_shared_object_for_its_architecture(arch):
    elf = Elf(LIBS[arch].read_bytes())
    assert elf.e_type == 3  # ET_DYN
    assert elf.e_machine == ARCHES[arch]


def test_architectures_are_not_swapped():
    machines = {arch: Elf(LIBS[arch].read_bytes()).e_machine for arch in ARCHES}
    assert machines == {"x86_64": 62, "aarch64": 183}


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_library_needs_glibc_2_17_at_most(arch):
    elf = Elf(LIBS[arch].read_bytes())
    versions = glibc_versions(elf)
    assert versions, "no GLIBC_ version needs found; the parser is broken"
    assert max(versions) <= MAX_GLIBC, f"{arch} needs GLIBC_{'.'.join(map(str, max(versions)))}"
    # Only libc carries symbol versions; anything else would be a new dependency.
    assert set(elf.version_needs()) == {"libc.so.6"}


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_library_soname_and_dependencies(arch):
    needed, soname = Elf(LIBS[arch].read_bytes()).dynamic()
    assert soname == "libmagic.so.1"
    assert "libc.so.6" in needed
    assert set(needed) <= ALLOWED_NEEDED, f"unexpected DT_NEEDED: {set(needed) - ALLOWED_NEEDED}"


def test_magic_mgc_is_a_compiled_magic_database():
    head = MGC.read_bytes()[:8]
    magic_number, version = struct.unpack("<II", head)
    assert magic_number == 0xF11E041C
    assert version == 16  # VERSIONNO of the format file 5.41 writes and reads


# ---------------------------------------------------------------------- loading


@native_only
def test_native_library_loads_and_reports_its_version():
    lib = ctypes.CDLL(str(LIBS[NATIVE]))
    lib.magic_version.restype = ctypes.c_int
    lib.magic_version.argtypes = []
    assert lib.magic_version() == BUNDLED_VERSION


def run_code(code: str) -> subprocess.CompletedProcess:
    result = run_python("-c", textwrap.dedent(code))
    assert result.returncode == 0, result.stderr
    return result


def mapped_libmagic(stdout: str) -> set[str]:
    return {line.split(None, 5)[5] for line in stdout.splitlines() if "libmagic" in line}


@native_only
def test_absolute_path_load_maps_exactly_the_bundled_file():
    lib = os.path.realpath(LIBS[NATIVE])
    result = run_code(
        f"""
        import ctypes
        ctypes.CDLL({lib!r})
        with open("/proc/self/maps") as f:
            print(f.read())
        """
    )
    assert mapped_libmagic(result.stdout) == {lib}


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@native_only
def test_python_magic_uses_the_preloaded_library_and_bundled_database(tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(tiny_png())
    lib = os.path.realpath(LIBS[NATIVE])
    result = run_code(
        f"""
        import ctypes
        ctypes.CDLL({lib!r})  # preload by absolute path, as the toolkit does
        import magic
        m = magic.Magic(mime=True, magic_file={str(MGC)!r})
        print("MIME", m.from_buffer(open({str(png)!r}, "rb").read()))
        print("VERSION", magic.version())
        with open("/proc/self/maps") as f:
            print(f.read())
        """
    )
    lines = dict(
        line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("MIME", "V"))
    )
    assert lines["MIME"] == "image/png"
    # A system libmagic (if any) must not have been loaded instead of, or next to, ours.
    assert lines["VERSION"] == str(BUNDLED_VERSION)
    assert mapped_libmagic(result.stdout) == {lib}


# --------------------------------------------------------------------- build.py


def run_build(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_python(BUILD, *args, timeout=120, env=env)


@pytest.fixture
def bin_copy(tmp_path):
    dest = tmp_path / "bin_magic"
    shutil.copytree(BIN_MAGIC, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_check_passes_on_the_committed_files():
    result = run_build("--check")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_passes_on_a_pristine_copy(bin_copy):
    result = run_build("--check", "--dir", str(bin_copy))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(parse_sums(BIN_MAGIC / "SHA256SUMS")))
def test_check_fails_when_a_file_is_tampered_with(bin_copy, name):
    path = bin_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = run_build("--check", "--dir", str(bin_copy))
    assert result.returncode != 0
    assert f"{name}: sha256 mismatch" in result.stderr
    assert "FAILED" in result.stderr


def test_check_fails_when_a_file_is_missing(bin_copy):
    (bin_copy / "aarch64" / "libmagic.so.1").unlink()
    result = run_build("--check", "--dir", str(bin_copy))
    assert result.returncode != 0
    assert "aarch64/libmagic.so.1: missing" in result.stderr


def test_check_fails_when_a_file_is_dropped_from_the_sums(bin_copy):
    sums = bin_copy / "SHA256SUMS"
    lines = [ln for ln in sums.read_text().splitlines() if "x86_64/" not in ln]
    sums.write_text("\n".join(lines) + "\n")
    result = run_build("--check", "--dir", str(bin_copy))
    assert result.returncode != 0
    assert "x86_64/libmagic.so.1: not listed in SHA256SUMS" in result.stderr


def test_check_fails_clearly_without_sums(bin_copy):
    (bin_copy / "SHA256SUMS").unlink()
    result = run_build("--check", "--dir", str(bin_copy))
    assert result.returncode != 0
    assert "SHA256SUMS does not exist" in result.stderr


# Offline tests of the extraction path: wheels rebuilt from the committed files,
# with build.WHEELS pointed at them.


@pytest.fixture
def build_module(monkeypatch):
    spec = importlib.util.spec_from_file_location("bin_magic_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheels(build, wheel_dir: Path, monkeypatch, mgc_for=None) -> None:
    wheel_dir.mkdir()
    wheels = {}
    for arch, (platform_tag, _, _) in build.WHEELS.items():
        name = f"fake-{arch}.whl"
        with zipfile.ZipFile(wheel_dir / name, "w") as zf:
            zf.writestr(build.WHEEL_LIB, LIBS[arch].read_bytes())
            mgc = MGC.read_bytes() if mgc_for is None else mgc_for(arch)
            zf.writestr(build.WHEEL_MGC, mgc)
            zf.writestr(
                build.WHEEL_LICENSE, (BIN_MAGIC / "licenses" / "pylibmagic-LICENSE").read_bytes()
            )
        digest = hashlib.sha256((wheel_dir / name).read_bytes()).hexdigest()
        wheels[arch] = (platform_tag, name, digest)
    monkeypatch.setattr(build, "WHEELS", wheels)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_build_extracts_and_verifies_from_wheels(build_module, bin_copy, tmp_path, monkeypatch):
    make_wheels(build_module, tmp_path / "wheels", monkeypatch)
    for arch in ARCHES:
        (bin_copy / arch / "libmagic.so.1").unlink()
    (bin_copy / "magic.mgc").unlink()
    assert build_module.main(["--dir", str(bin_copy), "--wheel-dir", str(tmp_path / "wheels")]) == 0
    assert tree_digest(bin_copy) == tree_digest(BIN_MAGIC)


def test_build_refuses_a_wheel_with_the_wrong_hash(build_module, bin_copy, tmp_path, capsys):
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    for _, name, _ in build_module.WHEELS.values():
        with zipfile.ZipFile(wheel_dir / name, "w") as zf:
            zf.writestr("pylibmagic/libmagic.so.1", b"not a library")
    before = tree_digest(bin_copy)
    assert build_module.main(["--dir", str(bin_copy), "--wheel-dir", str(wheel_dir)]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert tree_digest(bin_copy) == before


def test_build_refuses_changed_contents_and_leaves_files_alone(
    build_module, bin_copy, tmp_path, monkeypatch, capsys
):
    make_wheels(
        build_module,
        tmp_path / "wheels",
        monkeypatch,
        mgc_for=lambda arch: b"other " + arch.encode(),
    )
    before = tree_digest(bin_copy)
    assert build_module.main(["--dir", str(bin_copy), "--wheel-dir", str(tmp_path / "wheels")]) == 1
    err = capsys.readouterr().err
    assert "magic.mgc files differ" in err
    assert "x86_64/magic.mgc: produced by the wheels but not listed in SHA256SUMS" in err
    assert "Nothing in" in err
    assert tree_digest(bin_copy) == before


@pytest.mark.skipif(
    os.environ.get("BIN_MAGIC_NETWORK") != "1",
    reason="downloads the real wheels; set BIN_MAGIC_NETWORK=1",
)
def test_full_build_from_the_registry_reproduces_the_committed_files(bin_copy):
    result = run_build("--dir", str(bin_copy), env=dict(os.environ))  # online: as it is
    assert result.returncode == 0, result.stderr
    assert tree_digest(bin_copy) == tree_digest(BIN_MAGIC)
