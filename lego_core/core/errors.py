"""Errors a user can cause. Each message names the file/field at fault and the fix."""


class LegoError(Exception):
    """Base class: the CLI prints the message in one line and exits 2; the app shows it with st.error."""


class DataError(LegoError):
    """A dataset file or table is missing, malformed or inconsistent."""


class RecipeError(LegoError):
    """A recipe names an unknown brick, an impossible combination or an out-of-range value."""


class ModelNotAvailableError(LegoError):
    """A pretrained model is not available offline."""


class RunError(LegoError):
    """A run directory is missing, malformed, or in a state that forbids the action."""


def one_line(exc: BaseException) -> str:
    """An error message as the one line the CLI prints (whitespace and newlines folded)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
