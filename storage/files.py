"""Uploaded and e-mailed files on disk: under DATA_DIR/files by content hash, never at a path
taken from the sender."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath


def store_bytes(data_dir: str | os.PathLike[str], data: bytes) -> tuple[str, str]:
    """Store `data` under data_dir/files/ab/cd/<sha256>; return (sha256, path relative to data_dir).

    Writing is atomic (temporary file, fsync, rename), and storing the same bytes twice is a no-op.
    """
    digest = hashlib.sha256(data).hexdigest()
    relative = PurePosixPath("files", digest[:2], digest[2:4], digest)
    target = Path(data_dir, *relative.parts)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return digest, str(relative)


async def store_file(data_dir: str | os.PathLike[str], data: bytes) -> tuple[str, str]:
    """`store_bytes` in a worker thread: an fsync of up to 20 MB must not stall the event loop."""
    return await asyncio.to_thread(store_bytes, data_dir, data)
