"""The one error type of the data layer: it names the file, and where it can, the row and field."""

from __future__ import annotations


class DatasetError(ValueError):
    """Bad or missing dataset content.

    ``row`` is the 0-based row of the table (or the index along the first axis of an array file);
    ``field`` is the column, key or array property that is wrong.
    """

    def __init__(self, file: str, message: str, row: int | None = None, field: str | None = None):
        self.file, self.message, self.row, self.field = file, message, row, field
        where = [file]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}")
