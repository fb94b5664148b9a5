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


def older_schema_with(location: str, row: dict, *, postgres: slice, sqlite_before: str) -> None:
    """Leave the database at `location` at an earlier schema, holding one `requests` row, as
    an older release would have: PostgreSQL's migrations `MIGRATIONS[postgres]`, SQLite's
    up to (not including) the migration named `sqlite_before`."""
    from byoi_bot.store import is_postgres

    if is_postgres(location):
        import psycopg

        from byoi_bot.store import postgres as pg

        with psycopg.connect(location, autocommit=True) as conn:
            original = pg.MIGRATIONS
            pg.MIGRATIONS = original[postgres]
            try:
                pg.migrate(conn)
            finally:
                pg.MIGRATIONS = original
            conn.execute(
                f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                list(row.values()),
            )
        return
    from sqlite_utils import Database

    from byoi_bot.store.sqlite import migrations

    db = Database(location)
    migrations.apply(db, stop_before=sqlite_before)
    db["requests"].insert(row)
    db.close()
