"""Migration files on disk: discovery, normalisation and checksums.

A checksum is the sha256 of the file normalised so that editors and checkouts cannot change it:
a UTF-8 BOM is dropped and CRLF / CR line endings become LF.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

__all__ = ["FILENAME_RE", "checksum", "discover", "manifest", "normalize"]

FILENAME_RE = re.compile(r"^(?P<version>\d{4,})_(?P<slug>[a-z0-9][a-z0-9_]*)\.sql$")


def normalize(raw: bytes) -> bytes:
    """The bytes a checksum is taken of: no BOM, LF line endings."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def checksum(path: Path) -> str:
    """Hex sha256 of the normalised file."""
    return hashlib.sha256(normalize(path.read_bytes())).hexdigest()


def discover(directory: Path) -> list[Path]:
    """The ``*.sql`` files of ``directory``, sorted by name (files that do not match are not migrations)."""
    return sorted(p for p in directory.glob("*.sql") if p.is_file())


def manifest(directory: Path) -> tuple[str, ...]:
    """Sorted ``"<file>:<sha256>"`` entries: the ``migrations`` stack output and the post-deploy triggers."""
    return tuple(f"{p.name}:{checksum(p)}" for p in discover(directory))
