"""File writes that never leave a partial file behind."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    The file gets the mode a plain ``open(path, "wb")`` would give it (``0o666`` less the umask, so
    0644 under the usual 022): ``tempfile.mkstemp`` would make it 0600, unreadable to an inference
    server running as another user. The data is flushed to disk before the rename, so a crash leaves
    either the old file or the new one, never a truncated one. An ``OSError`` names ``path`` (the file the
    caller asked for), not the hidden temporary file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    try:
        while True:
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            try:
                # O_EXCL: a fresh name of our own; the kernel applies the umask to 0o666, as open() does.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise type(err)(err.errno, err.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Raise ``OSError`` naming ``path`` unless :func:`atomic_write` (after creating missing parents) could write it:
    checked before a long run whose results would otherwise be lost at the end."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a directory", str(path))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{parent} is not writable", str(path))
