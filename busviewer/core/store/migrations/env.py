"""Alembic environment of the busviewer store.

busviewer runs migrations itself (``busviewer.core.store.migrate``) on a connection it
has opened and locked; that connection arrives in ``config.attributes["connection"]``.
For a developer, ``alembic -c <ini with script_location=this folder> revision
--autogenerate`` compares a database with ``schema.py``'s tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from busviewer.core.store.schema import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url, or run migrations through busviewer (busviewer store migrate)")
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
