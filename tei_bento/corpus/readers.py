"""Stream a corpus row by row (never the whole file in memory): JSONL, plain text, CSV, Parquet.

Each row keeps its place in the file (`number`, from 0; the 1-based line for text formats),
so ids, shards and error reports stay the same when rows are skipped or a run resumes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("jsonl", "text", "csv", "parquet")
SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "text", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Row:
    number: int  # the row's place in the file, from 0
    line: int  # where a person finds it: the line (text formats) or the row (Parquet), from 1
    id: str | int
    text: str | None  # None: a bad row, `problem` says why
    problem: str | None = None


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"cannot tell the format of `{path}` by its name; pass --format ({', '.join(FORMATS)})")
    return found


def count_rows(path: Path, fmt: str) -> int | None:
    """Rows the file holds (for the progress bar): Parquet's metadata, else a line count."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as f:
        lines = sum(1 for _ in f)
    return lines - 1 if fmt == "csv" else lines


def _checked(number: int, line: int, value: object, row_id: object, field: str) -> Row:
    ident = number if row_id is None else row_id
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        return Row(number, line, number, None, f"the id is not a string or an integer: {ident!r}")
    if value is None:
        return Row(number, line, ident, None, f"no `{field}` field")
    if not isinstance(value, str):
        return Row(number, line, ident, None, f"`{field}` is not a string: {type(value).__name__}")
    if not value.strip():
        return Row(number, line, ident, None, f"`{field}` is empty")
    return Row(number, line, ident, value)


def read_rows(path: Path, fmt: str, text_field: str = "text", id_field: str | None = None) -> Iterator[Row]:
    if fmt == "text":
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            for number, line in enumerate(f):
                yield _checked(number, number + 1, line.rstrip("\r\n"), None, "text")
    elif fmt == "jsonl":
        with path.open(encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Row(number, number + 1, number, None, f"not JSON: {exc.msg}")
                    continue
                if not isinstance(record, dict):
                    yield Row(number, number + 1, number, None, "not a JSON object")
                    continue
                yield _checked(number, number + 1, record.get(text_field), record.get(id_field) if id_field else None, text_field)
    elif fmt == "csv":
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or text_field not in reader.fieldnames:
                raise ValueError(f"`{path}` has no `{text_field}` column (columns: {reader.fieldnames})")
            for number, record in enumerate(reader):
                yield _checked(number, reader.line_num, record.get(text_field), record.get(id_field) if id_field else None, text_field)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        if text_field not in parquet.schema_arrow.names:
            raise ValueError(f"`{path}` has no `{text_field}` column (columns: {parquet.schema_arrow.names})")
        columns = [text_field, *([id_field] if id_field else [])]
        number = 0
        for batch in parquet.iter_batches(batch_size=1024, columns=columns):
            texts = batch.column(text_field).to_pylist()
            ids = batch.column(id_field).to_pylist() if id_field else [None] * len(texts)
            for value, row_id in zip(texts, ids):
                yield _checked(number, number + 1, value, row_id, text_field)
                number += 1
    else:
        raise ValueError(f"unknown format `{fmt}`; one of {', '.join(FORMATS)}")
