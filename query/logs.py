"""A node's shipped log files, as Ray's log agent sees its log directory: which files a
glob names, and a file's bytes by range, from the end or from the start.

A file is stored whole at its path, or, while its collector ships it, as parts under
`_parts/<inode>/<start>.part` (`lake.logfiles`); `raylake compact` joins the parts into
the whole file (written completely before the parts go), so a whole file, when there is
one, is the newest form. Only paths the session's index lists are ever read.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from lake.layout import ClusterKey, log_file_path, logs_dir
from lake.store import Lake

BLOCK_SIZE = 1 << 16  # Ray's log agent reads and sends 64 KB blocks


class BadGlob(ValueError):
    """A glob Ray's log agent refuses."""


def glob_paths(paths: Iterable[str], pattern: str) -> list[str]:
    """What `Path(<log dir>).glob(pattern)` lists on a directory holding `paths` (Python
    3.11's rules, as Ray's log agent runs them): paths relative to the directory, a
    directory's with a trailing `/`, in name order."""
    if not pattern:
        raise BadGlob(f"Unacceptable pattern: {pattern!r}")
    parts = list(PurePosixPath(pattern).parts)
    if pattern.startswith("/") or ".." in parts:
        raise BadGlob(
            f"Invalid glob filter: {pattern}. It must be a relative path and cannot contain '..'."
        )
    if any("**" in p and p != "**" for p in parts):
        raise BadGlob("Invalid pattern: '**' can only be an entire path component")
    if pattern.endswith("/"):
        parts.append("")
    tree = _Tree(paths)
    found = dict.fromkeys(tree.select("", tuple(parts)))
    return [f"{p or '.'}/" if tree.is_dir(p) else p for p in found]


class _Tree:
    """The directories and files that a list of file paths implies."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.children: dict[str, set[str]] = {"": set()}
        for path in paths:
            parent = ""
            for name in path.split("/"):
                child = f"{parent}/{name}" if parent else name
                self.children[parent].add(name)
                parent = child
                if child != path:
                    self.children.setdefault(child, set())

    def is_dir(self, path: str) -> bool:
        return path in self.children

    def exists(self, path: str) -> bool:
        parent, _, name = path.rpartition("/")
        return name in self.children.get(parent, ())

    def _walk(self, directory: str) -> Iterator[str]:
        yield directory
        for name in sorted(self.children[directory]):
            child = f"{directory}/{name}" if directory else name
            if self.is_dir(child):
                yield from self._walk(child)

    def select(self, directory: str, parts: tuple[str, ...]) -> Iterator[str]:
        """pathlib's selectors: a part before another only matches directories."""
        if not parts or not parts[0]:
            yield directory
            return
        part, rest = parts[0], parts[1:]
        wanted = self.is_dir if rest else self.exists
        if part == "**":
            for start in self._walk(directory):
                yield from self.select(start, rest)
            return
        names = sorted(self.children[directory])
        if any(c in part for c in "*?["):
            names = [n for n in names if fnmatch.fnmatchcase(n, part)]
        else:
            names = [part] if part in names else []
        for name in names:
            child = f"{directory}/{name}" if directory else name
            if wanted(child):
                yield from self.select(child, rest)


@dataclass(frozen=True)
class _Piece:
    path: str  # full path in the lake's filesystem
    start: int
    size: int


class StoredLog:
    """One shipped log file, read by byte range whatever form it is stored in."""

    def __init__(self, lake: Lake, pieces: list[_Piece]) -> None:
        self.lake = lake
        self.pieces = pieces
        self.size = pieces[-1].start + pieces[-1].size if pieces else 0

    def read(self, start: int, end: int) -> bytes:
        """The bytes in [start, end), clipped to the file."""
        out = []
        for piece in self.pieces:
            low = max(start, piece.start)
            high = min(end, piece.start + piece.size)
            if low < high:
                data = self.lake.fs.cat_file(
                    piece.path, start=low - piece.start, end=high - piece.start
                )
                out.append(bytes(data))
        return b"".join(out)

    def blocks(self, start: int, end: int) -> Iterator[bytes]:
        """[start, end) in Ray's 64 KB blocks (Ray filters ANSI codes block by block)."""
        end = min(end, self.size)
        while start < end:
            data = self.read(start, min(end, start + BLOCK_SIZE))
            if not data:
                return
            yield data
            start += len(data)

    def start_of_last_lines(self, end: int, lines: int) -> int:
        """Where the last `lines` lines before `end` start: Ray's
        `find_start_offset_last_n_lines_from_offset` (log_agent.py), block by block
        from the end, a last line without a newline counting as a line."""
        if lines == 0:
            return end
        if self.read(max(0, end - 1), end) != b"\n":
            lines -= 1
        more = lines
        from_end = 0
        read_at = max(0, end - BLOCK_SIZE)
        previous = end
        while more >= 0 and read_at >= 0:
            block = self.read(read_at, read_at + min(BLOCK_SIZE, previous - read_at))
            count = block.count(b"\n")
            if count > more:
                from_end += len(block.split(b"\n", count - more)[-1])
                break
            more -= count
            from_end += len(block)
            if read_at == 0:
                break
            previous = read_at
            read_at = max(0, read_at - BLOCK_SIZE)
        return end - from_end


def open_log(
    lake: Lake, cluster: ClusterKey, session: str, node_id: str, path: str, inode: int | None
) -> StoredLog:
    """The stored file at `path` (relative to the node's session `logs/`, as the index
    names it), whole if it has been joined, else its parts. A file indexed with no bytes
    shipped yet (an empty file has no part) reads as empty."""
    whole = lake.full(log_file_path(cluster, session, node_id, path))
    lake.fs.invalidate_cache(whole)  # object stores cache listings; other processes write
    try:
        info = lake.fs.info(whole)
    except FileNotFoundError:
        info = {"type": "missing"}
    if info["type"] == "file":
        return StoredLog(lake, [_Piece(whole, 0, int(info["size"]))])
    if inode is None:
        return StoredLog(lake, [])
    parts_dir = lake.full(f"{logs_dir(cluster, session, node_id)}/_parts/{inode}")
    lake.fs.invalidate_cache(parts_dir)
    pieces = []
    for full, info in sorted(lake.fs.find(parts_dir, detail=True).items()):
        name = full.rsplit("/", 1)[-1]
        if name.endswith(".part") and name.removesuffix(".part").isdigit():
            pieces.append(_Piece(full, int(name.removesuffix(".part")), int(info["size"])))
    return StoredLog(lake, pieces)
