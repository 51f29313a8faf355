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


def test_upgrade_from_the_first_revision_keeps_the_data(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.exec_driver_sql(
                "INSERT INTO annotation (id, project_id, was_cancelled, ground_truth, deleted, "
                "received_at) VALUES (5, 1, false, false, false, '2026-11-26 10:00:00+00:00')"
            )
        init_db(engine)  # to head
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT id, skipped FROM annotation").all()
        assert [r[0] for r in rows] == [5]
    finally:
        engine.dispose()
