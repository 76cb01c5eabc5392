# Types of the compiled `ingest/jsonfill.pyx`.
from typing import Any

from ingest.columnar import TableBuilder
from ingest.eventids import EventIds

class Declined(Exception): ...

class JsonFill:
    unsupported: dict[str, str]
    def __init__(self, event_struct: type[Any], builders: dict[str, TableBuilder]) -> None: ...
    def take(
        self,
        body: bytes,
        seen: EventIds,
        builders: dict[str, TableBuilder],
    ) -> tuple[int, bytes, dict[str, int], str, str, set[str]]: ...
