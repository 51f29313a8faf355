"""The store's schema comes from its migrations, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect
from sqlmodel import SQLModel

from api.db import alembic_config, init_db, make_engine


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        init_db(engine)
        init_db(engine)  # idempotent: a second start changes nothing
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) | {"alembic_version"} == tables
        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.check(config)  # raises if the models differ from the migrated schema
    finally:
        engine.dispose()
