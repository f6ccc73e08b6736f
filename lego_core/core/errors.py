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


def os_error_line(exc: OSError) -> str:
    """An operating-system failure (a full disk, a path that cannot be written, /proc, /dev/full)
    as one line naming the path and what to do."""
    import errno

    where = exc.filename if exc.filename is not None else "the output"
    reason = exc.strerror or type(exc).__name__
    fix = {errno.ENOSPC: "free some space (or point it elsewhere) and run it again",
           errno.EDQUOT: "free some space (or point it elsewhere) and run it again"}.get(
        exc.errno, "choose a path this user may write and run it again"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
        else "check the path and run it again")
    return f"cannot use {where}: {reason}; {fix}"
