"""A lake at an fsspec URL: a local directory by default, `s3://bucket/prefix` through s3fs.

Writes are atomic: a local file is written beside its target and renamed over it; an
object store gets a single PUT. Readers never see half a file.

S3 settings come from the usual AWS variables (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, or the raylake-specific
`RAYLAKE_S3_ENDPOINT_URL`) or from explicit storage options.

Exceptions:

    LakeError
     +-- LakeNotFound        no `_lake.json` where a lake was expected
     +-- LakeVersionError    the lake was written by a newer major format
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fsspec

from lake.layout import FORMAT_VERSION, LAKE_FILE


class LakeError(Exception):
    pass


class LakeNotFound(LakeError):
    pass


class LakeVersionError(LakeError):
    pass


def storage_options(url: str, endpoint_url: str | None = None) -> dict[str, Any]:
    """fsspec options for a lake URL, from explicit values and the environment."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    endpoint = (
        endpoint_url
        or os.environ.get("RAYLAKE_S3_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    options: dict[str, Any] = {}
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


class Lake:
    """The root of a lake. Paths given to its methods are relative to the root."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, create: bool = False):
        self.url = url.rstrip("/")
        options = storage_options(self.url, endpoint_url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **options)
        self.root = self.root.rstrip("/")
        self.storage_options = options
        self._check_format(create)

    @property
    def is_local(self) -> bool:
        protocol = self.fs.protocol
        protocols = protocol if isinstance(protocol, tuple) else (protocol,)
        return "file" in protocols or "local" in protocols

    @property
    def protocol(self) -> str:
        protocol = self.fs.protocol
        return str(protocol[0] if isinstance(protocol, tuple) else protocol)

    def full(self, path: str) -> str:
        """A full path inside the filesystem (without the protocol)."""
        return f"{self.root}/{path}" if path else self.root

    def uri(self, path: str) -> str:
        """A URL for other engines (DuckDB, polars): `s3://...` or a local path."""
        full = self.full(path)
        return full if self.is_local else f"{self.protocol}://{full}"

    def _check_format(self, create: bool) -> None:
        if not self.exists(LAKE_FILE):
            if not create:
                raise LakeNotFound(
                    f"{self.url}: no {LAKE_FILE} here; is this a raylake lake? "
                    "(`raylake ingest` creates one)"
                )
            if not self.is_local:
                self.fs.mkdirs(self.root, exist_ok=True)
            major, minor = FORMAT_VERSION
            self.write_bytes(
                LAKE_FILE,
                json.dumps({"format": "raylake", "version": f"{major}.{minor}"}).encode(),
            )
            return
        info = json.loads(self.read_bytes(LAKE_FILE))
        version = str(info.get("version", ""))
        try:
            major = int(version.split(".")[0])
        except ValueError:
            raise LakeError(f"{self.url}/{LAKE_FILE}: unreadable version {version!r}") from None
        if major > FORMAT_VERSION[0]:
            raise LakeVersionError(
                f"{self.url} is lake format {version}; this raylake reads format "
                f"{FORMAT_VERSION[0]}.x. Upgrade raylake to read it."
            )

    def _fresh(self) -> None:
        """Forget cached listings: other processes write the same lake (s3fs caches
        directory listings forever, and per path only the path and its parents)."""
        if not self.is_local:
            self.fs.invalidate_cache()

    def exists(self, path: str) -> bool:
        self._fresh()
        return bool(self.fs.exists(self.full(path)))

    def read_bytes(self, path: str) -> bytes:
        data: bytes = self.fs.cat_file(self.full(path))
        return data

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a whole file atomically."""
        if self.is_local:
            self.write_chunks(path, [data])
        else:
            self.fs.pipe_file(self.full(path), data)  # one PUT

    def write_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Write a whole file from pieces, atomically, without holding it in memory: a
        local file is written beside its target and renamed over it; an object store
        gets one (multipart) upload, visible once complete."""
        target = self.full(path)
        if not self.is_local:
            with self.fs.open(target, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            return
        final = Path(target)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with temporary.open("wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            temporary.replace(final)
        finally:
            temporary.unlink(missing_ok=True)

    def delete(self, path: str) -> None:
        self.fs.rm_file(self.full(path))

    def list_files(self, path: str, suffix: str = "") -> Iterator[str]:
        """Every file below `path` (relative to the root), in name order."""
        base = self.full(path)
        self._fresh()
        if not self.fs.exists(base):
            return
        prefix = self.root + "/"
        for full in sorted(self.fs.find(base)):
            name = full.rsplit("/", 1)[-1]
            if name.startswith(".") or not full.endswith(suffix):
                continue
            yield full[len(prefix) :] if full.startswith(prefix) else full

    def list_dirs(self, path: str) -> list[str]:
        """The directories directly below `path` (relative to the root), in name order."""
        base = self.full(path)
        self._fresh()
        if not self.fs.exists(base):
            return []
        prefix = self.root + "/"
        found = self.fs.ls(base, detail=True)
        names = [str(e["name"]).rstrip("/") for e in found if e["type"] == "directory"]
        return sorted(n[len(prefix) :] if n.startswith(prefix) else n for n in names)

    def size(self, path: str) -> int:
        return int(self.fs.size(self.full(path)))
