"""Registering a dataset in any known format (`lego_core.data.formats`) from a path or an upload,
and the `datasets add/remove/show/formats` CLI handlers.

One path for the CLI and the app: detect (or take) the format, read and validate everything, then
write the registration atomically, so a bad file leaves nothing behind. The registration records
the format, the source path and the options, so other options re-read the source later; uploaded
sources are copied into the registration (`sources/data`) because their temporary folder goes away.
"""
from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath


from lego_core.data import formats, registry
from lego_core.data.cache import CorruptFile, read_dataset
from lego_core.data.schema import Dataset
from lego_core.core import paths
from lego_core.core.errors import DataError, LegoError

KIND = "format"
COPY = "data"  # uploaded sources live in <registration>/sources/data
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+ -]{0,127}")  # an upload path component we write
MAX_UPLOAD_FILES = 10_000
MAX_UNPACKED_BYTES = 16 * 2**30  # a zip bomb stops here, before anything is written
SHOWN_ITEMS = 5


def default_name(path: Path) -> str:
    """A registration name from a path's stem ('MINDlarge_train.zip' -> 'MINDlarge_train')."""
    stem = Path(path).stem if Path(path).is_file() else Path(path).name
    name = _BAD_CHARS.sub("-", stem).strip("-._")[:64].strip("-._")
    if not name:
        name = "dataset"
    if name in registry.RESERVED:
        name = f"{name}-data"
    return registry.check_name(name)


def options_of(fmt: formats.Format, given: dict) -> dict:
    """The format's defaults updated by `given`; DataError naming options the format does not take."""
    known = fmt.options
    unknown = sorted(k for k in given if k not in known)
    if unknown:
        raise DataError(f"format {fmt.name!r} takes options {sorted(known)}, not {unknown}; pass them as "
                        "--set key=value")
    return {**known, **given}


def add(path: str | Path, name: str | None = None, format: str | None = None, *, copy: bool = False,
        description: str = "", overwrite: bool = False, progress: Callable[[str], None] | None = None,
        **options) -> Dataset:
    """Read `path` (a file or folder) in `format` (detected when None), validate it fully, and
    register it as `name` (default: from the path's stem). `copy` stores the source files in the
    registration (uploads: their temporary folder goes away). Nothing is written when reading fails."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist: give a dataset file or folder")
    path = path.resolve()
    name = registry.check_name(name) if name else default_name(path)
    if registry.manifest(name) is not None and not overwrite:
        raise DataError(f"a dataset named {name!r} is already registered; choose another name (--name) or remove "
                        f"it first (`python -m lego_core datasets remove {name}`)")
    fmt = formats.get(format) if format else formats.detect(path)
    options = options_of(fmt, options)
    if progress:
        progress(f"reading {path} as {fmt.name} ...")
    try:
        dataset = fmt.read(path, name=name, **options)
    except OSError as exc:  # permissions, a vanished file: name it, not what it holds
        raise DataError(f"{exc.filename or path} could not be read ({exc.strerror or type(exc).__name__}); "
                        "check that it exists and is readable") from None
    source = {"format": fmt.name, "path": str(path)}
    copies = None
    if copy:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        copies = {f"{COPY}/{p.relative_to(path.parent if path.is_file() else path).as_posix()}": p for p in files}
        source["copy"] = f"{COPY}/{path.name}" if path.is_file() else COPY
    return registry.register(name, KIND, dataset, options, source, description or f"{fmt.title}: {path.name}",
                             copies=copies, overwrite=overwrite)


def rebuild(folder: Path, doc: dict, options: dict) -> Dataset:
    """A "format" registration re-read from its source with other options."""
    name, source = folder.name, doc.get("source") or {}
    if not isinstance(source, dict) or "format" not in source or "path" not in source:
        raise DataError(f"{folder / registry.MANIFEST} lacks its source format or path; register dataset "
                        f"{name!r} again")
    path = folder / "sources" / source["copy"] if source.get("copy") else Path(source["path"])
    fmt = formats.get(source["format"])
    if not path.exists() or not fmt.detect(path):
        raise DataError(f"dataset {name!r}: its source {path} is gone or no longer {fmt.layout}; load it with "
                        f"its registered options {doc.get('options', {})} or register it again")
    return fmt.read(path, name=name, **options_of(fmt, options))


def remove(name: str) -> None:
    """Delete a registration (its processed files and any copied sources; never the original files)."""
    registry.delete(name)


def show(name: str) -> dict:
    """What a registration holds: counts, item columns, its format's layout and protocol, a few items."""
    doc = registry.manifest(name)
    if doc is None:
        raise DataError(f"no dataset named {name!r} is registered; see `python -m lego_core datasets`")
    try:
        dataset = read_dataset(registry.folder_of(name))
    except CorruptFile as exc:
        raise DataError(f"dataset {name!r}: {exc}; register it again") from None
    source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
    fmt = next((f for f in formats.all_formats() if f.name == source.get("format")), None)
    items = dataset.items.head(SHOWN_ITEMS)
    return {"name": name, "kind": doc.get("kind"), "format": source.get("format", doc.get("kind")),
            "description": doc.get("description", ""), "source": source, "options": doc.get("options", {}),
            "created": doc.get("created"), "counts": doc.get("summary") or dataset.summary(),
            "layout": fmt.layout if fmt else "", "protocol": fmt.protocol if fmt else "",
            "item_columns": list(dataset.items.columns), "text_fields": list(dataset.text_fields),
            "category_field": dataset.category_field,
            "items": [{k: str(v)[:80] for k, v in row.items()} for row in items.to_dict("records")]}


def format_rows() -> list[dict]:
    """Every known format with its layout and protocol (the CLI `formats` list and the app's help)."""
    return [{"name": f.name, "title": f.title, "layout": f.layout, "protocol": f.protocol,
             "options": f.options} for f in formats.all_formats()]


# ---- uploads ------------------------------------------------------------------------------
def _safe_parts(name: str, what: str) -> list[str]:
    """The components of a client-sent relative name, each checked; DataError for absolute names,
    '..', empty or odd components (so the written path always stays in the folder the app chose)."""
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


def _extract_zip(data: bytes, dest: Path, shown: str) -> None:
    """Unpack a zip into `dest`, refusing links, absolute names and '..' before writing anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_UPLOAD_FILES:
                raise DataError(f"{shown} holds {len(members):,} entries, over {MAX_UPLOAD_FILES:,}")
            unpacked = sum(info.file_size for info in members)
            if unpacked > MAX_UNPACKED_BYTES:
                raise DataError(f"{shown} unpacks to {unpacked / 2**30:,.1f} GiB, over {MAX_UNPACKED_BYTES // 2**30} "
                                "GiB; give the dataset's folder on this machine instead")
            planned = []
            for info in members:
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DataError(f"{shown}: entry {info.filename!r} is a link; zip the files themselves")
                parts = _safe_parts(info.filename, f"{shown}: entry")
                if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
                    continue  # macOS resource forks, not data
                planned.append((info, dest.joinpath(*parts)))
            for info, target in planned:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile:
        raise DataError(f"{shown} is not a readable zip file; zip the dataset folder again") from None
    except FileExistsError as exc:
        raise DataError(f"{shown}: entry {Path(exc.filename).name!r} appears twice; zip the folder again") from None


def unpack_uploads(uploads: list[tuple[str, bytes]], dest: Path) -> Path:
    """Lay out uploaded files (client name, content) in the empty folder `dest` the app chose: one
    zip is extracted (its single top folder returned when it has one); other files are written under
    their checked base names (readers detect formats by file name). Returns the path to register."""
    if not uploads:
        raise DataError("upload a dataset file, several files, or a zip of the dataset folder")
    if len(uploads) == 1 and uploads[0][0].lower().endswith(".zip"):
        _extract_zip(uploads[0][1], dest, uploads[0][0])
        entries = list(dest.iterdir())
        if not entries:
            raise DataError(f"{uploads[0][0]} is empty; zip the dataset folder with its files")
        return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
    written = []
    for name, data in uploads:
        part = _safe_parts(re.split(r"[\\/]", name)[-1], "uploaded file")[-1]
        target = dest / part
        if target.exists():
            raise DataError(f"uploaded file {part!r} appears twice; upload each file once")
        target.write_bytes(data)
        written.append(target)
    return written[0] if len(written) == 1 else dest


def add_upload(uploads: list[tuple[str, bytes]], name: str | None = None, format: str | None = None,
               **options) -> Dataset:
    """Register uploaded files (one file, several, or a zip of a folder) via `add` with copies: they
    are unpacked into a new temporary folder (under checked names) that is removed afterwards, and
    messages name the files as uploaded, not the temporary folder."""
    with tempfile.TemporaryDirectory(prefix="lego-upload-") as tmp:
        folder = Path(tmp).resolve()
        try:
            path = unpack_uploads(uploads, folder)
            if not name:
                name = default_name(Path(_safe_parts(re.split(r"[\\/]", uploads[0][0])[-1], "uploaded file")[-1])
                                    if path == folder else path)
            return add(path, name, format, copy=True, description=f"uploaded {uploads[0][0][:80]}"
                       + (f" and {len(uploads) - 1} more" if len(uploads) > 1 else ""), **options)
        except DataError as exc:
            raise DataError(str(exc).replace(f"{folder}/", "").replace(str(folder), "the upload")) from None


def local_source(text: str, roots: list[Path] | None) -> Path:
    """A file or folder path typed in the app, resolved and confined to `roots` (LEGO_DATA_ROOTS;
    None: anywhere), every link inside it included; DataError naming the path, never its content."""
    try:
        return paths.confine(text, roots)
    except LegoError as exc:
        raise DataError(str(exc)) from None
