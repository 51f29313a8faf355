"""One identity per annotator: Label Studio user id as the key, one display name for it."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from api.db import init_db, make_engine
from api.members import display, names, record_users


def test_display_name_forms() -> None:
    assert display(3, "ann@example.org", "Ann", "Lee") == "Ann Lee <ann@example.org>"
    assert display(3, "ann@example.org", None, "") == "ann@example.org"
    assert display(3, None, "Ann", None) == "Ann"
    assert display(3, "", "", "") == "user 3"
    # line breaks, bidi overrides and zero-width characters cannot forge a layout
    assert display(4, "m@example.org", "An\u200bn\u202e", "Lee\r\nAdmin") == (
        "Ann Lee Admin <m@example.org>"
    )
    assert len(display(5, "x@example.org", "A" * 500, "")) < 120


def test_names_are_keyed_by_id_in_both_stores(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        init_db(engine)
        with Session(engine) as db:
            users = [
                {"id": 3, "email": "ann@example.org", "first_name": "Ann", "last_name": "Lee"},
                {"id": 5, "email": "bo@example.org", "first_name": "Bo", "last_name": ""},
                {"id": "not an id", "email": "x@example.org"},
            ]
            assert record_users(db, users) == 2
            assert record_users(db, users) == 0  # the same again changes nothing
            shown = names(db, ["3", "5", "8", "3 (annotation 12)", "odd key"])
            assert shown == {
                "3": "Ann Lee <ann@example.org>",
                "5": "Bo <bo@example.org>",
                "8": "user 8",  # not read from Label Studio yet
                "3 (annotation 12)": "Ann Lee <ann@example.org> (annotation 12)",
                "odd key": "odd key",
            }
            # member 5 takes member 3's name and, as far as a name can, their e-mail
            record_users(
                db,
                [{"id": 5, "email": "ann@example.org", "first_name": "Ann", "last_name": "Lee"}],
            )
            shown = names(db, ["3", "5"])
            assert shown == {
                "3": "Ann Lee <ann@example.org> (user 3)",
                "5": "Ann Lee <ann@example.org> (user 5)",
            }
            # the name follows the id: a rename is seen on the next pull
            record_users(db, [{"id": 5, "email": "bo@example.org", "first_name": "Bo"}])
            assert names(db, ["5"]) == {"5": "Bo <bo@example.org>"}
    finally:
        engine.dispose()


@pytest.mark.parametrize("bad", [None, "", "<script>alert(1)</script>"])
def test_names_are_plain_text_for_the_places_that_escape_them(bad: str | None) -> None:
    shown = display(9, "e@example.org", bad, None)
    assert shown in ("e@example.org", "<script>alert(1)</script> <e@example.org>")
