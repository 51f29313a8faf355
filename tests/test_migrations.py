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


def test_0012_drops_shared_links_and_reads_old_decisions_again(database_url: str) -> None:
    """Upgrading a store of revision 0011: two links that share one adjudication task are
    both dropped (the unique index could not be built, and neither clip's claim can be
    trusted), a gold clip's first showing is its link's send time, and a decision stored
    without ``updated_by`` loses its ``updated_at`` so the next pull reads it again."""
    engine = make_engine(database_url)
    link = (
        "INSERT INTO adjudication_link (project_id, clip_id, source_task_id, "
        "adjudication_project_id, adjudication_task_id, turns, disagreeing, reasons, sent_at) "
        "VALUES (1, '{clip}', {source}, 9, {task}, '[]', '[]', '[]', '{sent}')"
    )
    try:
        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0011")
            for clip, source, task, sent in (
                ("c1", 11, 91, "2026-11-26 10:00:00"),
                ("c2", 12, 91, "2026-11-26 10:01:00"),
                ("c3", 13, 93, "2026-11-26 10:02:00"),
            ):
                connection.exec_driver_sql(
                    link.format(clip=clip, source=source, task=task, sent=sent)
                )
            connection.exec_driver_sql(
                "INSERT INTO gold_clip (project_id, clip_id, session_id, marked_at) "
                "VALUES (1, 'c3', 's', '2026-11-26 09:00:00')"
            )
            for annotation_id, task in ((5, 93), (6, 500)):
                connection.exec_driver_sql(
                    "INSERT INTO annotation (id, project_id, task_id, was_cancelled, "
                    "ground_truth, deleted, received_at, updated_at) VALUES "
                    f"({annotation_id}, 9, {task}, false, false, false, "
                    "'2026-11-26 10:00:00', '2026-11-26 10:05:00')"
                )
        init_db(engine)  # to head
        with engine.connect() as connection:
            clips = connection.exec_driver_sql("SELECT clip_id FROM adjudication_link").all()
            shown = connection.exec_driver_sql("SELECT shown_at FROM gold_clip").scalar_one()
            updated = dict(
                connection.exec_driver_sql("SELECT id, updated_at FROM annotation").all()
            )
        assert [c[0] for c in clips] == ["c3"]
        assert str(shown).startswith("2026-11-26 10:02:00")
        assert updated[5] is None  # on a linked adjudication task: read again
        assert updated[6] is not None  # any other annotation keeps its version
    finally:
        engine.dispose()


def test_0013_starts_own_saves_from_who_saved_last(database_url: str) -> None:
    """Upgrading a store of revision 0012: an annotation last saved by its annotator is
    known as their own save; one saved by someone else, or by no one recorded, is not."""
    engine = make_engine(database_url)
    try:
        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0012")
            for annotation_id, annotator, saver in (
                (1, "7", "'7'"),
                (2, "7", "'8'"),
                (3, "7", "NULL"),
            ):
                connection.exec_driver_sql(
                    "INSERT INTO annotation (id, project_id, annotator, updated_by, "
                    "was_cancelled, ground_truth, deleted, received_at) VALUES "
                    f"({annotation_id}, 1, '{annotator}', {saver}, false, false, false, "
                    "'2026-11-26 10:00:00')"
                )
        init_db(engine)  # to head
        with engine.connect() as connection:
            own = dict(connection.exec_driver_sql("SELECT id, own_saved_by FROM annotation").all())
        assert own == {1: "7", 2: None, 3: None}
    finally:
        engine.dispose()
