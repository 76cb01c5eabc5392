# Types of the compiled `ingest/columnar.pyx`.
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ingest.eventids import EventIds

STR: int
TIME: int
HEX: int
HEX_RAW: int
INT: int
BOOL: int
FLOAT: int
OBJ: int
EVENT: int
PAYLOAD: int
ROW: int

class RowError(ValueError):
    index: int
    def __init__(self, index: int, message: str) -> None: ...

class Sizes: ...

class Column:
    name: str
    kind: int
    root: int
    paths: tuple[tuple[str, ...], ...]
    default: Any
    falsy_null: bool
    convert: Callable[[Any], Any] | None
    length: int
    def __init__(
        self,
        name: str,
        kind: int,
        root: int,
        paths: Iterable[Sequence[str]],
        default: Any = None,
        falsy_null: bool = False,
        convert: Callable[[Any], Any] | None = None,
        sizes: Sizes | None = None,
    ) -> None: ...
    def array(self, data_type: pa.DataType, start: int = 0) -> pa.Array[Any]: ...
    def give_array(self, data_type: pa.DataType) -> pa.Array[Any]: ...

class TableBuilder:
    table: str
    payload: str | None
    event_columns: list[Column]
    row_columns: list[Column]
    rows_path: tuple[str, ...] | None
    rows_of: Callable[[Any], Sequence[Any]] | None
    placeholder: Any
    events: int
    rows: int
    refused: int  # times neither in Ray's form nor parsed by Arrow, since `fill` began
    def __init__(
        self,
        table: str,
        payload: str | None,
        event_columns: Iterable[Column],
        row_columns: Iterable[Column] = (),
        rows_path: Sequence[str] | None = None,
        rows_of: Callable[[Any], Sequence[Any]] | None = None,
        placeholder: Any = None,
    ) -> None: ...
    def fresh(self, sized: bool = True) -> TableBuilder: ...
    def add(self, event: Any) -> None: ...
    def mark(self) -> tuple[int, int]: ...
    def rollback(self, mark: tuple[int, int]) -> None: ...
    def release(self) -> None: ...
    def counts_array(self) -> npt.NDArray[np.int32]: ...

def fill(
    events: list[Any],
    builders: dict[str, TableBuilder],
    seen: EventIds,
    checks: dict[str, TableBuilder],
    unknown: list[tuple[int, bool]],
) -> int: ...
def first_incomplete(events: list[Any], payload_fields: dict[str, str]) -> int: ...
def ray_time_ns(text: str) -> int | None: ...
def time_of(text: str) -> int | None: ...
def pooled_memory() -> tuple[int, int]: ...
