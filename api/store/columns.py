"""Whether an optional contract column exists yet (a newer sink migration adds it)."""
from __future__ import annotations

from ..db import Db
from ..errors import ApiError

_present: set[tuple[str, str]] = set()


def require_column(db: Db, table: str, column: str, what: str) -> None:
    """Raises a 503 naming the missing column; a column once seen is not looked up again
    (columns are only ever added by migrations)."""
    if (table, column) in _present:
        return
    row = db.one("SELECT count() AS n FROM system.columns WHERE database = currentDatabase() "
                 "AND table = {t:String} AND name = {c:String}", {"t": table, "c": column})
    if not row or not row["n"]:
        raise ApiError(503, "storage_not_ready",
                       f"{what} needs the {table}.{column} column, which this database does not "
                       "have yet: run the sink (it applies the migration that adds it)")
    _present.add((table, column))
