"""Last-resort isolation of rows no lake format can encode, so one value can never stall a partition.

The models reject what the lake cannot store (``schema`` dead letters), so encoding a file
should not fail. If it still does (a model gap, a library edge case), :func:`encode_isolating`
bisects the file's rows to find the ones that fail on their own, encodes the rest, and returns
the offenders so the caller can dead-letter them as ``unencodable``. Pure: no I/O. The clean
path costs one ``try`` around the single encode it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.formats import Format
from shared.source_model import Column, Row


@dataclass(frozen=True, slots=True)
class Unencodable:
    """A row that failed to encode by itself: its position in the input and why."""

    index: int
    error: str


def encode_isolating(
    fmt: Format, columns: Sequence[Column], rows: Sequence[Row], *, record_name: str
) -> tuple[bytes, list[Unencodable]]:
    """``rows`` encoded in ``fmt``, minus the rows that cannot be encoded (returned, in input order)."""
    try:
        return fmt.encode_rows(columns, rows, record_name), []
    except Exception:  # any failure of any encoder: find the rows that cause it
        pass
    bad: list[Unencodable] = []
    _bisect(fmt, columns, rows, range(len(rows)), record_name, bad)
    bad_indexes = {item.index for item in bad}
    good = [row for index, row in enumerate(rows) if index not in bad_indexes]
    # Rows that encode alone but not together cannot be told apart; then the whole file fails loudly.
    return fmt.encode_rows(columns, good, record_name), sorted(bad, key=lambda item: item.index)


def _bisect(
    fmt: Format,
    columns: Sequence[Column],
    rows: Sequence[Row],
    indexes: range,
    record_name: str,
    bad: list[Unencodable],
) -> None:
    """Append to ``bad`` every row of ``indexes`` that fails to encode alone, encoding halves that fail."""
    if len(indexes) == 1:
        index = indexes[0]
        try:
            fmt.encode_rows(columns, [rows[index]], record_name)
        except Exception as error:
            bad.append(Unencodable(index, f"{type(error).__name__}: {error}"[:1000]))
        return
    middle = len(indexes) // 2
    for half in (indexes[:middle], indexes[middle:]):
        try:
            fmt.encode_rows(columns, [rows[i] for i in half], record_name)
        except Exception:
            _bisect(fmt, columns, rows, half, record_name, bad)
