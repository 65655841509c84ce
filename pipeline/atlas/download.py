"""Fetching the r/Place Atlas's files, pinned to a commit of each atlas project and checked.

The files are the atlas projects' own (AGPL-3.0), fetched from GitHub at the commit named
here, never shipped with this repository. Each download is checked against the file's git
object id in that commit's tree (the SHA-1 of "blob <size>\\0" + the bytes: what the commit
itself is built on, so a file that passes is the commit's, byte for byte) and, where one is
recorded, its SHA-256. A file that fails is not kept. Moving a pin: docs/atlas.md.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.atlas.store import atlas_path
from pipeline.errors import PipelineError

CHUNK = 1024 * 1024
TIMEOUT_S = 60


class AtlasDownloadError(PipelineError):
    """An atlas file could not be fetched, or is not the pinned one."""


@dataclass(frozen=True)
class PinnedFile:
    """One year's atlas file: where it is fetched from, and what it must be."""

    year: str
    repo: str  # owner/name on GitHub
    commit: str
    path: str  # in the repository
    git_blob: str  # its object id in the commit's tree (`git rev-parse COMMIT:PATH`)
    sha256: str | None  # `git show COMMIT:PATH | sha256sum`, where it was computed
    host: str = "https://raw.githubusercontent.com"  # serves each commit's files by path

    @property
    def url(self) -> str:
        return f"{self.host}/{self.repo}/{self.commit}/{self.path}"


# Commits of 2026 (2017: 2024); the 2022 and 2023 canvases shipped in pipeline/canvas_files
# come from the same commits (PROVENANCE.md there).
PINNED = {
    "2017": PinnedFile(
        "2017", "placeAtlas/atlas-2017", "fb730258dd35766860804674f719dec6335625a4",
        "web/atlas.json", "b2dba81b7fc7b29c1ac63bc3e19d13ea6219c269",
        "40a93f67dc55287812b66c0b3cdf2fb93980e2232fb0b3631e744a3550903b26"),
    "2022": PinnedFile(
        "2022", "placeAtlas/atlas-2022", "3435cb15dd1c8c3e1e827709029d25dfa029f160",
        "web/atlas.json", "5a8653e86fce7063d90704bd4b432729f0d81553", None),
    "2023": PinnedFile(
        "2023", "placeAtlas/atlas-2023", "4b58d4ddd8bee5c07b456ec756e83d256147c716",
        "web/atlas.json", "67805ad6804f8885479c027e15d618b64e20c4be", None),
}


@dataclass(frozen=True)
class Digests:
    git_blob: str
    sha256: str
    size: int


def digests(path: Path) -> Digests:
    """The file's git object id and SHA-256."""
    size = path.stat().st_size
    blob = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    sha256 = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            blob.update(chunk)
            sha256.update(chunk)
    return Digests(blob.hexdigest(), sha256.hexdigest(), size)


def mismatch(pin: PinnedFile, found: Digests) -> str | None:
    """What differs from the pin, in words; None when the file is the pinned one."""
    if found.git_blob != pin.git_blob:
        return f"its git object id is {found.git_blob}, not {pin.git_blob}"
    if pin.sha256 is not None and found.sha256 != pin.sha256:
        return f"its SHA-256 is {found.sha256}, not {pin.sha256}"
    return None


def fetch_atlas(pin: PinnedFile, folder: Path) -> str:
    """Download the pinned file into `folder` (as atlas-<year>.json) unless it is there
    already; return a line saying what was done. AtlasDownloadError names what went wrong."""
    target = atlas_path(folder, pin.year)
    if target.is_file() and mismatch(pin, digests(target)) is None:
        return f"atlas {pin.year}: {target} is already the pinned file"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtlasDownloadError(f"PLACE_ATLAS_DIR {folder} cannot be created "
                                 f"({exc.strerror or exc})") from None
    partial = target.with_name(f".{target.name}.partial")
    try:
        with urllib.request.urlopen(pin.url, timeout=TIMEOUT_S) as response, \
                partial.open("wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise AtlasDownloadError(f"could not download the {pin.year} atlas from {pin.url} "
                                 f"({reason}); check the network, or fetch that URL "
                                 f"yourself and save it as {target}") from None
    found = digests(partial)
    problem = mismatch(pin, found)
    if problem is not None:
        partial.unlink(missing_ok=True)
        raise AtlasDownloadError(f"the {pin.year} atlas from {pin.url} is not the pinned "
                                 f"file: {problem}; nothing was kept")
    os.replace(partial, target)
    return (f"atlas {pin.year}: {target} ({found.size / 1e6:.1f} MB, verified; "
            f"sha256 {found.sha256})")
