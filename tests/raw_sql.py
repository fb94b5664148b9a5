"""Raw SQL on a store's database, whichever it is, as an intruder or an editor would."""

from __future__ import annotations

from psycopg.rows import tuple_row

from byoi_bot.store import Store


def execute(store, sql: str, params: list | tuple = ()) -> list[tuple]:
    """Run `sql` (with `?` placeholders) on the store's database, outside its methods; the
    rows it returns, as tuples."""
    if isinstance(store, Store):
        with store._lock:
            return [tuple(r) for r in store.db.execute(sql, list(params)).fetchall()]
    with store.pool.connection() as conn:
        cursor = conn.cursor(row_factory=tuple_row)
        cursor.execute(sql.replace("?", "%s"), list(params))
        return cursor.fetchall() if cursor.description else []


def column(store, sql: str, params: list | tuple = ()) -> list:
    """The first column of what `sql` returns."""
    return [row[0] for row in execute(store, sql, params)]
