"""The one zip reader: an uploaded or given .zip unpacked into a folder with every member checked.

Refused with a one-line DataError naming the member, before or while it is written: links,
absolute names and '..' (checked for all members before anything is written), encrypted members,
compression methods Python cannot read (Deflate64, ...), corrupt data (bad CRC, truncated),
members that expand more than MAX_RATIO times their compressed size, lines longer than
MAX_LINE_BYTES (checked on the stream: no member is ever held in memory whole), more than
MAX_MEMBERS entries and more than MAX_UNPACKED_BYTES in all.
"""
from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from lego_core.core.errors import DataError

MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 16 * 2**30  # a zip bomb stops here, before anything is written
MAX_RATIO = 200  # a member may expand to at most this many times its compressed size (text: ~3-10x) ...
RATIO_FLOOR = 1 << 20  # ... once it is over 1 MiB (tiny members of repeated bytes compress far better)
MAX_LINE_BYTES = 64 << 20  # no dataset line is 64 MiB; a longer one is a bomb or not a text file
CHUNK = 1 << 20
_SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+ -]{0,127}")  # a member path component we write
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_METHOD_NAMES = {9: "Deflate64", 6: "Implode", 98: "PPMd", 93: "Zstandard", 95: "XZ"}


def safe_parts(name: str, what: str) -> list[str]:
    """The components of a client-sent relative name, each checked; DataError for absolute names,
    '..', empty or odd components (so the written path always stays in the folder chosen)."""
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DataError(f"{what} {name!r} is an absolute or Windows path; zip the folder with relative names")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{what} {name!r} points outside its folder ('..'); zip the folder with relative names")
    bad = next((p for p in parts if not _SAFE_PART.fullmatch(p)), None)
    if not parts or bad is not None:
        raise DataError(f"{what} {name!r} has a name part ({bad!r}) other than letters, digits, '_', '.', '-', "
                        "'+' and spaces; rename it and upload again")
    return parts


def _plan(archive: zipfile.ZipFile, dest: Path, shown: str) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Every member checked by its header (count, total size, links, names, encryption, method)
    and where it goes; macOS resource forks are skipped."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise DataError(f"{shown} holds {len(members):,} entries, over {MAX_MEMBERS:,}")
    unpacked = sum(info.file_size for info in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise DataError(f"{shown} unpacks to {unpacked / 2**30:,.1f} GiB, over {MAX_UNPACKED_BYTES // 2**30} GiB; "
                        "give the dataset's folder on this machine instead")
    planned = []
    for info in members:
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"{shown}: entry {info.filename!r} is a link; zip the files themselves")
        parts = safe_parts(info.filename, f"{shown}: entry")
        if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
            continue  # macOS resource forks, not data
        if info.flag_bits & 0x1:
            raise DataError(f"{shown}: entry {info.filename!r} is encrypted; zip the files without a password")
        if info.compress_type not in _METHODS:
            method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
            raise DataError(f"{shown}: entry {info.filename!r} uses {method} compression, which cannot be read "
                            "here; zip it again with ordinary Deflate (the default of most tools)")
        planned.append((info, dest.joinpath(*parts)))
    return planned


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, shown: str) -> None:
    """Stream one member to `target`, checking its expansion ratio and line length as it goes."""
    limit = max(RATIO_FLOOR, MAX_RATIO * max(info.compress_size, 1))
    where = f"{shown}: entry {info.filename!r}"
    written, line = 0, 0
    with archive.open(info) as src, open(target, "xb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise DataError(f"{where} expands over {MAX_RATIO}x its compressed size ({info.compress_size:,} "
                                "bytes); a dataset file does not, so it is refused as a zip bomb")
            first = chunk.find(b"\n")  # only the line carried across chunks can outgrow a chunk
            if first >= 0 and line + first > MAX_LINE_BYTES:
                line = line + first
            elif first >= 0:
                line = len(chunk) - chunk.rfind(b"\n") - 1
            else:
                line += len(chunk)
            if line > MAX_LINE_BYTES:
                raise DataError(f"{where} has a line over {MAX_LINE_BYTES:,} bytes; dataset files hold one "
                                "record a line, so it is refused (not a text file, or a zip bomb)")
            out.write(chunk)


def extract(source: bytes | Path, dest: Path, shown: str) -> None:
    """Unpack the zip `source` (its bytes, or a path) into the folder `dest`; `shown` names it in
    errors. Nothing is written before every member's name and header passed; a member that fails
    while streaming leaves what was written so far in `dest` (the caller's temporary folder)."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            planned = _plan(archive, dest, shown)
            for info, target in planned:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    _copy_member(archive, info, target, shown)
                except FileExistsError:
                    raise DataError(f"{shown}: entry {info.filename!r} appears twice; zip the folder again") from None
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
                        ValueError) as exc:
                    reason = " ".join(str(exc).split())[:80] or type(exc).__name__
                    raise DataError(f"{shown}: entry {info.filename!r} is corrupt ({reason}); zip the dataset "
                                    "folder again") from None
    except zipfile.BadZipFile:
        raise DataError(f"{shown} is not a readable zip file; zip the dataset folder again") from None
