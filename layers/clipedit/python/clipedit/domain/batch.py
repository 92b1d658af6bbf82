"""Catalog batches: one job per CSV row or JSONL line.

Columns (or JSON fields) that are manifest fields set that field for the row; ``image_urls`` in CSV
is ``|``-separated, ``keep_audio`` is true/false, ``elements`` and ``tags`` are JSON. Every other
column is a variable: it fills ``{column}`` placeholders in the prompt and the output key template,
and is kept on the job as a tag (e.g. ``sku``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from clipedit.domain.errors import SpecError
from clipedit.domain.manifest import SPEC_FIELDS, check_json_depth, parse_manifest
from clipedit.domain.spec import parse_bool

MAX_BATCH_ROWS = 50_000
MAX_CELL_CHARS = 10_000
ROW_FIELDS = SPEC_FIELDS - {"variants"}


@dataclass
class BatchRow:
    row: int  # 1-based data row (CSV header excluded)
    line: int  # line in the file, for error messages
    layer: dict[str, Any] = field(default_factory=dict)  # manifest fields of the row
    variables: dict[str, str] = field(default_factory=dict)  # the other columns
    error: SpecError | None = None


def _row_from_fields(row: int, line: int, fields: dict[str, Any], *, csv_cells: bool) -> BatchRow:
    result = BatchRow(row=row, line=line)
    try:
        manifest: dict[str, Any] = {}
        for name, value in fields.items():
            if value is None or value == "":
                continue
            if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
                raise SpecError(f"line {line}: column {name!r} is longer than {MAX_CELL_CHARS} characters", code="INVALID_BATCH")
            if name in ROW_FIELDS:
                if csv_cells:
                    value = _csv_value(name, value, line)
                manifest[name] = value
            elif name == "variants":
                raise SpecError(f"line {line}: batch rows cannot have variants; put them in a preset", code="INVALID_BATCH")
            elif near := _misspelled_field(str(name)):
                raise SpecError(f"line {line}: unknown column {name!r}; did you mean {near!r}? (a column that is "
                                "not a spec field is a variable for {placeholders}, and none may look like a "
                                "misspelt field)", code="UNKNOWN_COLUMN")
            else:
                result.variables[str(name)] = value if isinstance(value, str) else json.dumps(value)
        result.layer = parse_manifest(manifest, where=f"line {line}")
    except SpecError as error:
        result.error = error
    return result


def _misspelled_field(name: str) -> str | None:
    """The spec field a column name is a near miss of (``Prompt``, ``promt``, ``keep-audio``): such a
    column would silently become a variable and the row run without the value meant for the field."""
    import difflib  # only batch files with extra columns get here: not paid at every cold start

    candidates = difflib.get_close_matches(name.strip().lower().replace("-", "_"), sorted(ROW_FIELDS), n=1,
                                           cutoff=0.8)
    return candidates[0] if candidates else None


def _csv_value(name: str, value: str, line: int) -> Any:
    if name == "image_urls":
        return [part.strip() for part in value.split("|") if part.strip()]
    if name in ("keep_audio", "normalize"):
        return parse_bool(value, field=name, default=True)
    if name in ("elements", "tags"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise SpecError(f"line {line}: column {name} must be JSON ({error.msg})", code="INVALID_BATCH") from None
    return value


def parse_csv(lines: Iterable[str]) -> Iterator[BatchRow]:
    reader = csv.DictReader(lines, strict=True)
    row = 0
    try:
        if reader.fieldnames is None:
            raise SpecError("the CSV file is empty; the first line must name the columns", code="INVALID_BATCH")
        duplicates = {name for name in reader.fieldnames if reader.fieldnames.count(name) > 1}
        if duplicates:
            raise SpecError(f"the CSV header repeats {', '.join(sorted(duplicates))}", code="INVALID_BATCH")
        for record in reader:
            row += 1
            if row > MAX_BATCH_ROWS:
                raise SpecError(f"the batch has more than {MAX_BATCH_ROWS} rows; split it", code="BATCH_TOO_LARGE")
            if None in record:  # more cells than header columns
                yield BatchRow(row=row, line=reader.line_num, error=SpecError(
                    f"line {reader.line_num}: {len(record[None]) + len(reader.fieldnames)} cells for "
                    f"{len(reader.fieldnames)} columns", code="INVALID_BATCH"))
                continue
            yield _row_from_fields(row, reader.line_num, dict(record), csv_cells=True)
    except csv.Error as error:
        raise SpecError(f"malformed CSV at line {reader.line_num}: {error}", code="INVALID_BATCH") from None


def parse_jsonl(lines: Iterable[str]) -> Iterator[BatchRow]:
    row = 0
    for line_number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        row += 1
        if row > MAX_BATCH_ROWS:
            raise SpecError(f"the batch has more than {MAX_BATCH_ROWS} rows; split it", code="BATCH_TOO_LARGE")
        try:
            value = json.loads(text)
            check_json_depth(value, where=f"line {line_number}")
        except json.JSONDecodeError as error:
            yield BatchRow(row=row, line=line_number, error=SpecError(
                f"line {line_number}: not valid JSON ({error.msg} at column {error.colno})", code="INVALID_JSON"))
            continue
        except SpecError as error:
            yield BatchRow(row=row, line=line_number, error=error)
            continue
        if not isinstance(value, dict):
            yield BatchRow(row=row, line=line_number, error=SpecError(
                f"line {line_number}: each line must be a JSON object", code="INVALID_BATCH"))
            continue
        yield _row_from_fields(row, line_number, value, csv_cells=False)


def parse_batch(key: str, lines: Iterable[str]) -> Iterator[BatchRow]:
    if key.lower().endswith(".csv"):
        return parse_csv(lines)
    return parse_jsonl(lines)
