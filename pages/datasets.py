"""Datasets: what can be loaded here (with the counts recorded at registration), the current
dataset's counts, previews and distributions, and adding a dataset: any known format from a path or
an upload, a MIND folder on disk, or uploaded items + interactions tables.

Table uploads are written under names chosen here (items.csv, ...), each in a fresh temporary
folder: the name a browser sends is only shown (escaped), never used as a path. Any-format uploads
go to lego_core.data.registration.add_upload, which writes them in a new temporary folder under
checked base names (a zip: checked relative names; '..', absolute names and links refused) and
copies them into the registration. The path fields are confined to LEGO_DATA_ROOTS when that is
set; LEGO_READ_ONLY=1 hides every form."""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import plotly.express as px
import streamlit as st

from lego_core.explore import distributions, frames
from lego_core.core.errors import LegoError
from pages import _common as ui, _generate_field

ui.require_navigation()

PREVIEW_ROWS = 500
NONE = "(none)"

st.title("Datasets")

listed = ui.available_datasets()
loadable = [d["name"] for d in listed if d.get("loadable", True)]


def _pick() -> None:
    st.session_state["dataset"] = st.session_state["datasets-pick"]


current = ui.current_dataset_name()
if current in loadable:
    st.session_state["datasets-pick"] = current
left, right = st.columns([1, 2], vertical_alignment="bottom")
left.selectbox("Current dataset", loadable or [current], key="datasets-pick", on_change=_pick,
               help="The same choice as in the sidebar: every page works on it.")
dataset = ui.dataset_or_stop()
counts = frames.dataset_counts(dataset)
seen = st.session_state.setdefault("dataset_counts", {})  # counts of datasets opened in this session
seen[current] = counts


def _builtin_counts(name: str) -> dict:
    """A built-in dataset's counts with its default options (cached loads, milliseconds)."""
    try:
        return frames.dataset_counts(ui.load_dataset(name, {}))
    except LegoError:
        return {}


with right.expander(f"All {len(listed)} datasets available here"):
    rows = []
    for d in listed:
        known = d.get("summary") or seen.get(d["name"]) or (_builtin_counts(d["name"]) if d.get("built_in")
                                                           and d.get("loadable", True) else {})
        rows.append({"name": d["name"], "kind": d.get("format") or d.get("kind", ""),
                     "protocol": d.get("protocol", ""), "items": known.get("items"),
                     "users": known.get("users"), "clicks": known.get("clicks"),
                     "loadable": d.get("loadable", True), "description": d.get("description", ""),
                     "train": known.get("train_impressions"), "reason": d.get("reason", "")})
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption("Registered datasets show the counts recorded when they were registered; built-in ones those "
               "of their default options (or of the options in use, once opened here).")
cols = st.columns(6)
for col, (label, key) in zip(cols, [("Items", "items"), ("Users", "users"), ("Clicks", "clicks"),
                                    ("Train impressions", "train_impressions"),
                                    ("Valid impressions", "valid_impressions"), ("Test impressions", "test_impressions")]):
    col.metric(label, f"{counts.get(key, 0):,}")
st.caption(f"Text fields: {ui.safe(', '.join(dataset.text_fields) or 'none')} · category field: "
           f"{ui.safe(dataset.category_field or 'none')}. Next: build a recommender for it on the Builder page.")

items_tab, users_tab, imps_tab, plots_tab, add_tab = st.tabs(["Items", "Users", "Impressions", "Plots", "Add a dataset"])
with items_tab:
    st.caption(f"First {min(PREVIEW_ROWS, dataset.num_items):,} of {dataset.num_items:,} items.")
    st.dataframe(dataset.items.head(PREVIEW_ROWS), hide_index=True, width="stretch")
    _generate_field.render(ui.current_dataset_name())
with users_tab:
    st.caption(f"First {min(PREVIEW_ROWS, dataset.num_users):,} of {dataset.num_users:,} users.")
    st.dataframe(frames.users_frame(dataset, PREVIEW_ROWS), hide_index=True, width="stretch")
with imps_tab:
    splits = [s for s, imps in dataset.splits.items() if len(imps)]
    if splits:
        split = st.selectbox("Split", splits, key="datasets-split")
        frame = frames.impressions_frame(dataset, split, 200)
        st.caption(f"First {len(frame):,} of {len(dataset.splits[split]):,} {split} impressions "
                   "(candidates and clicks as item ids).")
        st.dataframe(frame, hide_index=True, width="stretch")
    else:
        st.info("This dataset has no impressions.")
with plots_tab:
    p1, p2 = st.columns(2)
    lengths = distributions.history_length_counts(dataset)
    fig = px.bar(lengths, x="from", y="users", hover_data=["to"], title="History length per user")
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), bargap=0, xaxis_title="history length")
    p1.plotly_chart(fig, width="stretch", key="plot-history")
    sizes = distributions.impression_size_counts(dataset)
    fig = px.bar(sizes, x="from", y="impressions", color="split", hover_data=["to"], barmode="overlay", log_y=True,
                 title="Impression size (candidates), log scale")
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), bargap=0, xaxis_title="candidates")
    p2.plotly_chart(fig, width="stretch", key="plot-sizes")
    p2.dataframe(distributions.impression_stats(dataset), hide_index=True, width="stretch")
    cats = frames.category_counts(dataset)
    if len(cats):
        top = cats.head(30).assign(category=lambda f: f["category"].map(frames.plain))  # plotly reads HTML tags
        fig = px.bar(top, x="category", y="items", title=f"Items per {frames.plain(dataset.category_field)}"
                     + (f" (top 30 of {len(cats)})" if len(cats) > 30 else ""))
        fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(fig, width="stretch", key="plot-categories")
    else:
        st.caption("This dataset has no category field.")


UPLOAD_SUFFIXES = {".csv": ".csv", ".tsv": ".tsv", ".parquet": ".parquet"}  # the only suffixes written
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _suffix(name: str) -> str:
    """The lower-case extension of the last part of a browser-sent name ('' when none)."""
    return os.path.splitext(re.split(r"[\\/]", name)[-1])[1].lower()


def _upload_problem(label: str, upload: Any) -> str | None:
    """Why an upload is not read (name, type or size), as a one-line message; None when it is fine."""
    shown = ui.shown_name(re.split(r"[\\/]", upload.name)[-1] or upload.name)
    if not upload.name.strip() or _CONTROL.search(upload.name):
        return (f"{label} {shown}: the file name is empty or holds control characters; "
                "rename the file and upload it again.")
    if _suffix(upload.name) not in UPLOAD_SUFFIXES:
        return f"{label} {shown} is not a .csv, .tsv or .parquet file; save it as one of those and upload it again."
    limit = ui.max_upload_mb()
    if upload.size > limit * 2**20:
        return (f"{label} {shown} is {upload.size / 2**20:,.1f} MB, over the {limit} MB upload limit; "
                "register larger tables from Python (lego_core.data.datasets.register_tables).")
    return None


@contextmanager
def _saved(upload: Any, stem: str) -> Iterator[Path]:
    """The upload written as <stem><suffix from UPLOAD_SUFFIXES> in a fresh temporary folder, removed
    afterwards (call _upload_problem first: the suffix must be allowed)."""
    with tempfile.TemporaryDirectory(prefix="lego-upload-") as tmp:
        path = Path(tmp) / f"{stem}{UPLOAD_SUFFIXES[_suffix(upload.name)]}"
        path.write_bytes(upload.getvalue())
        yield path


def _as_uploaded(text: str, shown: dict[str, str]) -> str:
    """A message about the temporary copies, naming the files as uploaded (stem -> shown name)."""
    copy = r"[^\s'\"“”]*lego-upload-[^\\/\s]*[\\/](items|interactions|table)\.(csv|tsv|parquet)"
    return re.sub(copy, lambda m: shown.get(m.group(1), m.group(1)), text)


ADD_TABS = ("MIND folder", "Upload tables", "Any format")
ADD_TAB = "datasets-add-tab"  # st.session_state: the tab the last dataset was added from, open after the rerun
adding_from = ADD_TABS[0]  # the tab whose form is being drawn (set below)


def _registered(name: str, notes: list[str]) -> None:
    """Make the new dataset current (the sidebar applies it on the rerun) and say what was dropped."""
    ui.available_datasets.clear()
    st.session_state["dataset_next"] = name
    st.session_state["datasets-added"] = (name, notes)
    st.session_state[ADD_TAB] = adding_from
    st.rerun()


def _add_mind() -> None:
    roots = ui.data_roots()
    where = (f" It must be under {ui.safe(os.pathsep.join(str(r) for r in roots))} ({ui.DATA_ROOTS_ENV})."
             if roots is not None else "")
    st.caption("A folder holding train/ and dev/, each with news.tsv and behaviors.tsv (MIND-small or large)."
               + where)
    with st.form("mind-form", border=False):
        name = st.text_input("Name", key="mind-name", placeholder="mind-small")
        folder = st.text_input("Folder on this machine", key="mind-folder", placeholder="/data/MINDsmall")
        submitted = st.form_submit_button("Load MIND folder", icon=":material/folder_open:")
    if not submitted:
        return
    if not name.strip() or not folder.strip():
        st.error("Give both a name and the folder path.")
        return
    try:
        path = ui.data_folder(folder)
    except ValueError as exc:
        st.error(ui.one_line(exc), icon=":material/error:")
        return
    from lego_core.data import datasets

    _register(lambda: datasets.register_mind(name.strip(), path), folder, "Reading and checking the MIND files…")


def _add_tables() -> None:
    limit = ui.max_upload_mb()
    st.caption("An items table (an id column + text/categorical columns) and an interactions table "
               "(user, item, timestamp, optional 0/1 label), as CSV, TSV or Parquet. Nothing is saved "
               "unless both are valid.")
    name = st.text_input("Name", key="tables-name", placeholder="my-shop")
    u1, u2 = st.columns(2)
    # No `type=` filter: Streamlit would answer a wrong extension with a traceback; the page checks
    # the name itself (_upload_problem) and says what is wrong in one line.
    limit_help = (f"CSV, TSV or Parquet, up to {limit:,} MB per file (server.maxUploadSize); register larger "
                  "tables from Python with lego_core.data.datasets.register_tables.")
    items_file = u1.file_uploader("Items table", key="tables-items", help=limit_help)
    inter_file = u2.file_uploader("Interactions table", key="tables-inter", help=limit_help)

    @st.cache_data(max_entries=8, show_spinner=False)
    def _preview(suffix: str, file_id: str, _data: bytes):
        with tempfile.TemporaryDirectory(prefix="lego-upload-") as tmp:
            path = Path(tmp) / f"table{UPLOAD_SUFFIXES[suffix]}"
            path.write_bytes(_data)
            return frames.table_preview(path)

    previews, uploads = {}, {}
    for key, label, upload in (("items", "Items table", items_file),
                               ("interactions", "Interactions table", inter_file)):
        if upload is None:
            continue
        if problem := _upload_problem(label, upload):
            st.error(ui.message(problem), icon=":material/error:")
            continue
        shown = ui.shown_name(re.split(r"[\\/]", upload.name)[-1])
        try:
            previews[key] = _preview(_suffix(upload.name), upload.file_id, upload.getvalue())
            uploads[key] = (upload, shown)
        except LegoError as exc:
            st.error(ui.message(f"{label} {_as_uploaded(str(exc), {'table': shown})}"), icon=":material/error:")
    if len(previews) == 2:
        item_cols, inter_cols = list(previews["items"].columns), list(previews["interactions"].columns)

        def _guess(columns: list[str], *names: str) -> int:
            for n in names:
                if n in columns:
                    return columns.index(n)
            return 0

        m1, m2 = st.columns(2)
        with m1:
            st.dataframe(previews["items"], hide_index=True, width="stretch")
            item_id = st.selectbox("Item id column", item_cols, index=_guess(item_cols, "item_id", "id"),
                                   key="map-item-id")
            rest = [c for c in item_cols if c != item_id]
            category = st.selectbox("Category column", [NONE] + rest, key="map-category",
                                    index=1 + _guess(rest, "category", "genre", "genres") if
                                    {"category", "genre", "genres"} & set(rest) else 0)
            text = st.multiselect("Text columns", [c for c in rest if c != category], key="map-text",
                                  default=[c for c in rest if c != category and c in ("title", "abstract",
                                                                                      "name", "description")])
        with m2:
            st.dataframe(previews["interactions"], hide_index=True, width="stretch")
            user = st.selectbox("User column", inter_cols, index=_guess(inter_cols, "user_id", "user"),
                                key="map-user")
            item = st.selectbox("Item column", inter_cols, index=_guess(inter_cols, "item_id", "item"),
                                key="map-item")
            stamp = st.selectbox("Timestamp column", inter_cols,
                                 index=_guess(inter_cols, "timestamp", "time", "ts"), key="map-time")
            label = st.selectbox("Label column (optional)", [NONE] + inter_cols, key="map-label",
                                 index=1 + inter_cols.index("label") if "label" in inter_cols else 0)
        if st.button("Register tables", type="primary", icon=":material/upload_file:"):
            if not name.strip():
                st.error("Give the dataset a name.")
                return
            mapping = {"item_id": item_id, "text": text or None,
                       "category": None if category == NONE else category, "user": user, "item": item,
                       "timestamp": stamp, "label": None if label == NONE else label}
            shown = {key: uploads[key][1] for key in uploads}
            from lego_core.data import datasets

            try:
                with ui.data_notes() as notes, st.spinner("Checking the tables…"), ExitStack() as stack:
                    items_path = stack.enter_context(_saved(uploads["items"][0], "items"))
                    inter_path = stack.enter_context(_saved(uploads["interactions"][0], "interactions"))
                    datasets.register_tables(name.strip(), items_path, inter_path, mapping,
                                             description=f"uploaded tables {shown['items']} + {shown['interactions']}")
            except LegoError as exc:
                st.error(ui.message(_as_uploaded(str(exc), shown)), icon=":material/error:")
                return
            _registered(name.strip(), [_as_uploaded(note, shown) for note in notes])
    elif items_file is None or inter_file is None:
        st.caption("Upload both tables to choose their columns.")


DETECT = "detect automatically"
HERE, UPLOAD = "A folder or file on this machine", "Upload files"


def _add_any() -> None:
    """Any known format, from a path on this machine or an upload (files or a zip of the folder)."""
    from lego_core.data import registration

    known = registration.format_rows()
    layouts = {row["name"]: row for row in known}
    st.caption("A dataset in any format the Format box lists (left on detect, it is recognised from its "
               "files): give its folder or file on this machine, or upload its files (a zip of the folder keeps "
               "its layout). It is read and checked in full before anything is saved.")
    c1, c2 = st.columns(2)
    name = c1.text_input("Name", key="add-name", placeholder="from the folder or file name")
    fmt = c2.selectbox("Format", [DETECT] + list(layouts), key="add-format",
                       format_func=lambda f: f if f == DETECT else f"{f}: {layouts[f]['title']}",
                       help="\n\n".join(f"**{ui.safe(r['name'])}**: {ui.safe(r['layout'])}" for r in known)
                       or "No format is known yet.")
    if fmt != DETECT:
        st.caption(f"Layout: {ui.safe(layouts[fmt]['layout'])} · protocol: {ui.safe(layouts[fmt]['protocol'])}")
    chosen = {"name": name.strip() or None, "format": None if fmt == DETECT else fmt}
    roots = ui.data_roots()
    where = (f" It must be under {ui.safe(os.pathsep.join(str(r) for r in roots))} ({ui.DATA_ROOTS_ENV})."
             if roots is not None else "")
    source = st.radio("Source", [HERE, UPLOAD], key="add-source", horizontal=True)
    if source == HERE:
        st.caption("A dataset folder or file on the machine running this app." + where)
        path = st.text_input("Folder or file", key="add-path", placeholder="/data/MINDlarge")
        if st.button("Register", key="add-path-go", icon=":material/folder_open:"):
            if not path.strip():
                st.error("Give the dataset's folder or file path.")
                return
            _register(lambda: registration.add(registration.local_source(path, roots), **chosen))
    else:
        limit = ui.max_upload_mb()
        files = st.file_uploader("Dataset files, or a zip of the dataset folder", key="add-upload",
                                 accept_multiple_files=True,
                                 help=f"Up to {limit:,} MB per file; larger datasets: give their folder instead.")
        if st.button("Register upload", key="add-upload-go", icon=":material/upload_file:", disabled=not files):
            too_big = [f for f in files if f.size > limit * 2**20]
            if too_big:
                st.error(ui.message(f"{ui.shown_name(too_big[0].name)} is over the {limit} MB upload limit; "
                                    "give its folder on this machine instead."), icon=":material/error:")
                return
            _register(lambda: registration.add_upload([(f.name, f.getvalue()) for f in files], **chosen))


def _register(do, source: str = "the dataset", reading: str = "Reading and checking the dataset…") -> None:
    """Run a registration; one-line error (naming `source` when the OS does not say which file), or
    make the new dataset current."""
    try:
        with ui.data_notes() as notes, st.spinner(reading):
            dataset = do()
    except LegoError as exc:
        st.error(ui.one_line(exc), icon=":material/error:")
        return
    except OSError as exc:  # unreadable file or folder: say which, not what it holds
        st.error(ui.message(f"Could not read {ui.shown_name(exc.filename or source, 120)}: "
                            f"{exc.strerror or type(exc).__name__}"), icon=":material/error:")
        return
    _registered(dataset.name, notes)


with add_tab:
    notice = st.container()  # always there: a message after registering does not move the tabs below
    if added := st.session_state.pop("datasets-added", None):
        with notice:
            st.success(f"Registered '{ui.safe(added[0])}'; it is now the current dataset.",
                       icon=":material/check_circle:")
            for note in added[1]:
                st.warning(ui.message(note), icon=":material/info:")
    if ui.read_only():
        ui.read_only_note("Adding datasets")
    else:  # the tab a dataset was just added from stays open (it does not jump back to the first)
        for adding_from, tab, add in zip(ADD_TABS, st.tabs(ADD_TABS, default=st.session_state.get(ADD_TAB)),
                                         (_add_mind, _add_tables, _add_any)):
            with tab:
                add()
