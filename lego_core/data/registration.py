"""Registering a dataset in any known format (`lego_core.data.formats`) from a path or an upload,
and the `datasets add/remove/show/formats` CLI handlers.

One path for the CLI and the app: detect (or take) the format, read and validate everything, then
write the registration atomically, so a bad file leaves nothing behind. The registration records
the format, the source path and the options, so other options re-read the source later; uploaded
sources are copied into the registration (`sources/data`) because their temporary folder goes away.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lego_core.data import archives, formats, store
from lego_core.data.cache import CorruptFile, discard
from lego_core.data.processed import processed_folder, read_dataset
from lego_core.data.io import CONTENT_GAPS, refuse_gaps, warn
from lego_core.data.schema import Dataset
from lego_core.core import paths
from lego_core.core.errors import DataError, LegoError

KIND = "format"
COPY = "data"  # uploaded sources live in <registration>/sources/data
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
SHOWN_ITEMS = 5
STALE_TMP_SECONDS = 30 * 60  # a `.tmp-*` registration folder nothing was written to for this long is a dead writer's


def default_name(path: Path) -> str:
    """A registration name from a path's stem ('MINDlarge_train.zip' -> 'MINDlarge_train')."""
    stem = Path(path).stem if Path(path).is_file() else Path(path).name
    name = _BAD_CHARS.sub("-", stem).strip("-._")[:64].strip("-._")
    if not name:
        name = "dataset"
    if name in store.RESERVED:
        name = f"{name}-data"
    return store.check_name(name)


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
        strict: bool = False, **options) -> Dataset:
    """Read `path` (a file or folder, or a .zip of one) in `format` (detected when None), validate
    it fully, and register it as `name` (default: from the path's stem). `copy` stores the source
    files in the registration (uploads: their temporary folder goes away). Content gaps (empty
    titles, ...) are kept, warned and noted in the manifest; `strict` refuses them instead.
    Nothing is written when reading fails."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist: give a dataset file or folder")
    path = path.resolve()
    clean_stale()
    if path.is_file() and path.suffix.lower() == ".zip" and not format:
        return add_upload([(path.name, path)], name or default_name(path), description=description or f"{path.name}",
                          overwrite=overwrite, progress=progress, strict=strict, **options)
    name = store.check_name(name) if name else default_name(path)
    if store.manifest(name) is not None and not overwrite:
        raise store.taken(name)
    fmt = formats.get(format) if format else formats.detect(path)
    options = options_of(fmt, options)
    if progress:
        progress(f"reading {path} as {fmt.name} ...")
    try:
        dataset = fmt.read(path, name=name, **options)
    except OSError as exc:  # permissions, a vanished file: name it, not what it holds
        raise DataError(f"{exc.filename or path} could not be read ({exc.strerror or type(exc).__name__}); "
                        "check that it exists and is readable") from None
    gaps = dataset.info.get(CONTENT_GAPS) or []
    if strict:
        refuse_gaps(gaps)
    if dataset.info.get("cache") == "hit":
        for note in gaps:  # the reader warned when it built them; a cached read is warned here
            warn(note)
    source = {"format": fmt.name, "path": str(path)}
    copies = None
    if copy:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        copies = {f"{COPY}/{p.relative_to(path.parent if path.is_file() else path).as_posix()}": p for p in files}
        source["copy"] = f"{COPY}/{path.name}" if path.is_file() else COPY
    # the registration links the processed cache's files: registrations of one source share one copy
    processed = processed_folder(dataset.info.get("fingerprint"))  # read before register() renames the key
    registered = store.register(name, KIND, dataset, options, source, description or f"{fmt.title}: {path.name}",
                                copies=copies, overwrite=overwrite, processed=processed)
    if copy and processed is not None:  # an upload's temporary folder is never read again: the links are its copy
        discard(processed)
    return registered


def rebuild(folder: Path, doc: dict, options: dict) -> Dataset:
    """A "format" registration re-read from its source with other options."""
    name, source = folder.name, doc.get("source") or {}
    if not isinstance(source, dict) or "format" not in source or "path" not in source:
        raise DataError(f"{folder / store.MANIFEST} lacks its source format or path; register dataset "
                        f"{name!r} again")
    path = folder / "sources" / source["copy"] if source.get("copy") else Path(source["path"])
    fmt = formats.get(source["format"])
    if not path.exists() or not fmt.detect(path):
        raise DataError(f"dataset {name!r}: its source {path} is gone or no longer {fmt.layout}; load it with "
                        f"its registered options {doc.get('options', {})} or register it again")
    return fmt.read(path, name=name, **options_of(fmt, options))


def remove(name: str) -> None:
    """Delete a registration (its processed files and any copied sources; never the original files)."""
    store.delete(name)


def show(name: str) -> dict:
    """What a registration holds: counts, item columns, its format's layout and protocol, a few items."""
    doc = store.manifest(name)
    if doc is None:
        raise DataError(f"no dataset named {name!r} is registered; see `python -m lego_core datasets`")
    try:
        dataset = read_dataset(store.folder_of(name))
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
            "content_gaps": doc.get(CONTENT_GAPS) or dataset.info.get(CONTENT_GAPS) or [],
            "items": [{k: str(v)[:80] for k, v in row.items()} for row in items.to_dict("records")]}


def format_rows() -> list[dict]:
    """Every known format with its layout and protocol (the CLI `formats` list and the app's help)."""
    return [{"name": f.name, "title": f.title, "layout": f.layout, "protocol": f.protocol, "scheme": f.scheme,
             "options": f.options} for f in formats.all_formats()]


# ---- uploads ------------------------------------------------------------------------------
def clean_stale(now: float | None = None) -> list[Path]:
    """Remove the `.tmp-*` folders a killed registration left under the datasets folder: those that
    nothing was written to for STALE_TMP_SECONDS (a live writer keeps touching its files). Returns them."""
    now = time.time() if now is None else now
    removed = []
    for tmp in store.folder_of("x").parent.glob(".tmp-*"):
        try:
            newest = max([tmp.stat().st_mtime] + [p.stat().st_mtime for p in tmp.rglob("*")])
        except OSError:
            continue  # vanished while looked at: its writer finished or cleaned it
        if tmp.is_dir() and now - newest > STALE_TMP_SECONDS:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def unpack_uploads(uploads: list[tuple[str, bytes | Path]], dest: Path) -> Path:
    """Lay out uploaded files (client name, content or a local path) in the empty folder `dest` the
    app chose: one zip is extracted by `archives.extract` (its single top folder returned when it
    has one); other files are written under their checked base names (readers detect formats by
    file name). Returns the path to register."""
    if not uploads:
        raise DataError("upload a dataset file, several files, or a zip of the dataset folder")
    if len(uploads) == 1 and uploads[0][0].lower().endswith(".zip"):
        archives.extract(uploads[0][1], dest, uploads[0][0])
        entries = list(dest.iterdir())
        if not entries:
            raise DataError(f"{uploads[0][0]} is empty; zip the dataset folder with its files")
        return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
    written = []
    for name, data in uploads:
        part = archives.safe_parts(re.split(r"[\\/]", name)[-1], "uploaded file")[-1]
        target = dest / part
        if target.exists():
            raise DataError(f"uploaded file {part!r} appears twice; upload each file once")
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data)
        written.append(target)
    return written[0] if len(written) == 1 else dest


def add_upload(uploads: list[tuple[str, bytes | Path]], name: str | None = None, format: str | None = None,
               description: str = "", **options) -> Dataset:
    """Register uploaded files (one file, several, or a zip of a folder; content or a local path)
    via `add` with copies: they are unpacked into a new temporary folder (under checked names) that
    is removed afterwards, and messages name the files as uploaded, not the temporary folder."""
    with tempfile.TemporaryDirectory(prefix="lego-upload-") as tmp:
        folder = Path(tmp).resolve()
        try:
            path = unpack_uploads(uploads, folder)
            if not name:
                name = default_name(Path(archives.safe_parts(re.split(r"[\\/]", uploads[0][0])[-1], "uploaded file")[-1])
                                    if path == folder else path)
            return add(path, name, format, copy=True, description=description or f"uploaded {uploads[0][0][:80]}"
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
