"""One way to replace a file so that readers and crashes see the old content or the new, never half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], *chunks: bytes) -> Path:
    """Write ``chunks`` to a unique temp file beside ``path``, fsync it, then rename it over ``path``.

    The temp name is unique, so two processes writing the same file never interleave; whichever renames last
    wins whole. Permissions follow the umask like a normally created file (``mkstemp`` alone would give 0600).
    """
    target = Path(path)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
