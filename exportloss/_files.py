"""File writes that never leave a partial file behind."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    The file gets the mode a plain ``open(path, "wb")`` would give it (``0o666`` less the umask, so
    0644 under the usual 022): ``tempfile.mkstemp`` would make it 0600, unreadable to an inference
    server running as another user. The data is flushed to disk before the rename, so a crash leaves
    either the old file or the new one, never a truncated one.
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            # O_EXCL: a fresh name of our own; the kernel applies the umask to 0o666, as open() does.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
