"""Bad inputs and injected faults, as a hostile or clumsy user would try them: each gets a one-line
error naming the file or field and the fix (or a recovery), and loses nothing that existed.

The cases live in tests/bad_inputs/ (one table per area); this file runs them all.
"""
from __future__ import annotations

import importlib
import pkgutil
import warnings

import pytest

import tests.bad_inputs as package
from tests.bad_inputs import Case, CliResult, snapshot

CASES: list[Case] = []
for module in pkgutil.iter_modules(package.__path__):
    CASES += importlib.import_module(f"tests.bad_inputs.{module.name}").CASES


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line message, got {len(lines)} lines:\n{text}"
    return lines[0]


def test_the_table_is_large_and_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(ids) >= 150


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input(case: Case, tmp_path):
    ctx = case.arrange(tmp_path)
    ctx.setdefault("tmp", tmp_path)
    kept = case.keep(ctx)
    before = snapshot(kept)
    names = case.names(ctx) if callable(case.names) else case.names
    if case.raises is not None:
        with pytest.raises(case.raises) as info:
            case.act(ctx)
        message = _one_line(str(info.value))
        result = info.value
    else:
        with warnings.catch_warnings(record=True) as caught:  # a recovery says what it did, in one line
            warnings.simplefilter("always")
            result = case.act(ctx)
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        for note in notes:
            _one_line(note)
        message = "\n".join(notes)
        if isinstance(result, CliResult):
            assert case.exit is not None, "a CLI case states its exit code"
            assert result.code == case.exit, f"exit {result.code}, stderr: {result.stderr}"
            if case.exit != 0:
                message = _one_line(result.stderr)
            assert "Traceback" not in result.stderr
    if names:
        assert names.lower() in message.lower(), f"{names!r} not in message {message!r}"
    assert "weights_only=False" not in message, "never suggest unsafe loading"
    assert snapshot(kept) == before, "an existing file changed"
    if case.check is not None:
        case.check(ctx, result)
