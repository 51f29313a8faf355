"""Table models of the service's store, apart from the core records in ``schemas``.

One row per judgement (annotation x turn x dimension), long format; annotations are kept
as rows of their own so that an older update never overwrites a newer one and a deletion
is remembered (a tombstone) even when it arrives before the annotation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class AnnotationBase(SQLModel):
    """A Label Studio annotation as the service last saw it."""

    project_id: int = Field(index=True)
    task_id: int | None = Field(default=None, index=True)
    annotator: str | None = None
    was_cancelled: bool = False
    ground_truth: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    lead_time: float | None = None
    # who last saved it, as Label Studio records it (the request's user, whatever the
    # request claimed as ``completed_by``); None for versions kept before it was read
    updated_by: str | None = None
    # the first annotator Label Studio recorded as saving it themselves (``updated_by``
    # equal to the annotator), kept once seen: a member's later save over it (even one
    # that changes nothing) does not unmake the annotator's own work where that is what
    # counts (a gold clip's panel), and a member who gives it to someone else, themselves
    # included (``completed_by`` is writable), does not make it theirs (:func:`own_work`)
    own_saved_by: str | None = None
    # sha256 of the result at the annotator's last own save, and of the result now: a save
    # by someone else that leaves the result as the annotator saved it (starring it as
    # ground truth, pressing Update) takes nothing away from the annotator's work
    own_hash: str | None = None
    result_hash: str | None = None
    # that own save's time as Label Studio gave it, and when the service received it: a
    # decision is as new as the adjudicator's own save, not as a later star by another
    own_updated_at: datetime | None = None
    own_received_at: datetime | None = None


def own_work(annotation: AnnotationBase) -> bool:
    """Whether the annotation's result is its annotator's own: Label Studio recorded the
    annotator named on it now as saving it, and since then nobody else saved it, or only
    without changing its result."""
    a = annotation
    if a.own_saved_by is None or a.own_saved_by != a.annotator:
        return False
    return a.updated_by == a.annotator or (a.own_hash is not None and a.own_hash == a.result_hash)


def saved_over(annotation: AnnotationBase) -> bool:
    """Whether its annotator saved it themselves and it is no longer their own work
    (:func:`own_work`): someone else changed its result, or renamed its annotator."""
    return annotation.own_saved_by is not None and not own_work(annotation)


class Annotation(AnnotationBase, table=True):
    """Stored annotation; ``id`` is Label Studio's annotation id.

    ``skipped`` counts, by reason, the result items that gave no judgement (unknown
    control or label, a value on the wrong region, ...): reported, never dropped silently.
    """

    id: int = Field(primary_key=True)
    received_at: datetime
    skipped: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON))


class JudgementBase(SQLModel):
    """One annotator's value for one turn and dimension."""

    project_id: int
    annotation_id: int
    task_id: int = Field(index=True)
    annotator: str
    turn_id: str
    dimension: str
    value: str
    taxonomy: str
    taxonomy_version: str


class Judgement(JudgementBase, table=True):
    """Stored judgement; one per annotation, turn and dimension."""

    # Every index is paid for by each of the ~50 rows an event inserts, so there are only
    # those a query needs: an annotation's rows (replaced or deleted) by the unique key, the
    # units an event touches by (project, turn), a dimension's rows (reports, exports) by
    # (project, dimension), a batch of tasks' rows (exports) by task.
    __table_args__ = (
        UniqueConstraint("annotation_id", "turn_id", "dimension"),
        Index("ix_judgement_project_turn", "project_id", "turn_id"),
        Index("ix_judgement_project_dimension", "project_id", "dimension"),
    )

    id: int | None = Field(default=None, primary_key=True)


class JudgementPublic(JudgementBase):
    """A judgement as the API returns it."""

    id: int


class JudgementsPublic(SQLModel):
    """A page of judgements."""

    data: list[JudgementPublic]
    count: int


class ShiftEventRow(SQLModel, table=True):
    """A shift span an annotator marked; times in session seconds."""

    __tablename__ = "shift_event"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    annotation_id: int = Field(index=True)
    task_id: int
    annotator: str
    session_id: str
    start: float
    end: float
    from_emotion: str | None = None
    to_emotion: str | None = None
    trigger: str | None = None
    onset: str | None = None
    trigger_turn: str | None = None  # the turn linked as the shift's cause


class Task(SQLModel, table=True):
    """A Label Studio task (one clip) as the service last saw it."""

    id: int = Field(primary_key=True)
    project_id: int = Field(index=True)
    clip_id: str | None = Field(default=None, index=True)
    session_id: str | None = Field(default=None, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    deleted: bool = False
    # when the service recorded the deletion: a pull that began later and still finds the
    # task (Label Studio on SQLite gives a new task a deleted one's id) brings it back
    deleted_at: datetime | None = None


class AdjudicationProject(SQLModel, table=True):
    """A Label Studio project the service made for adjudicating another: recorded before
    any task goes there, so that no part of the service takes it for a main project."""

    __tablename__ = "adjudication_project"

    id: int = Field(primary_key=True)  # the adjudication project's Label Studio id
    project_id: int = Field(index=True)  # the project it adjudicates
    recorded_at: datetime
    # the last check that found the project as made (annotate.adjudication_guard), and
    # the last thing found changed, when
    checked_at: datetime | None = None
    problem: str | None = None
    problem_at: datetime | None = None


class ProjectReport(SQLModel, table=True):
    """An adjudication project's settings as a PROJECT_UPDATED webhook from Label Studio
    reported them (the fields the sender makes it with), kept until the sender's next
    check (:mod:`annotate.adjudication_guard`): a change put back before that check shows
    only here."""

    __tablename__ = "project_report"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)  # the adjudication project
    received_at: datetime
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class AdjudicationResend(SQLModel, table=True):
    """How often a clip was sent to adjudication again because its task was tampered with
    (:func:`annotate.adjudicate.send`): past ``adjudication.max_resends`` the clip is held
    for a person instead, so a member cannot throw an adjudicator's work away forever."""

    __tablename__ = "adjudication_resend"

    project_id: int = Field(primary_key=True)
    clip_id: str = Field(primary_key=True)
    resends: int = 0
    last_at: datetime | None = None
    released: int = 0  # re-sends a person allowed past the limit


class PinnedTask(SQLModel, table=True):
    """A main-project task's data as the import pushed it (:mod:`api.pins`): events on the
    task are read against it, not against the data Label Studio sends, which any member
    can edit. ``changed_at``: when an event first carried other data."""

    __tablename__ = "pinned_task"

    task_id: int = Field(primary_key=True)
    project_id: int = Field(index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    data_hash: str
    pinned_at: datetime
    changed_at: datetime | None = None


class IntendedEmotionRow(SQLModel, table=True):
    """What a session's prompt intended at a turn (``session.yaml``'s ``intended``), kept
    here instead of in the Label Studio task, which every annotator can read."""

    __tablename__ = "intended_emotion"

    project_id: int = Field(primary_key=True)
    turn_id: str = Field(primary_key=True)
    session_id: str = Field(index=True)
    turn_index: int
    emotion: str


class AgreementSum(SQLModel, table=True):
    """One running sum behind the incremental agreement figures (see annotate.incremental)."""

    __tablename__ = "agreement_sum"

    project_id: int = Field(primary_key=True)
    dimension: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: float = 0.0


class SyncState(SQLModel, table=True):
    """When a project was last reconciled with Label Studio."""

    __tablename__ = "sync_state"

    project_id: int = Field(primary_key=True)
    last_pull: datetime | None = None
    last_full_pull: datetime | None = None
    # the service's webhook on the project (annotate.ls_webhooks): last checked, the last
    # time it had to be put back and what was wrong then, and why the last check failed
    webhook_checked_at: datetime | None = None
    webhook_repaired_at: datetime | None = None
    webhook_problem: str | None = None
    webhook_error: str | None = None
    # the webhook's id and Label Studio updated_at at the last check (ls_webhooks.check_webhook)
    webhook_stamp: str | None = None
    # when a service process last claimed the project's periodic full pull (api.sync): one
    # process pulls, whatever the number of processes and machines
    full_pull_claimed_at: datetime | None = None


class DeadLetter(SQLModel, table=True):
    """A webhook delivery that could not be applied, kept for inspection."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime
    reason: str
    body: str


class InboxRow(SQLModel, table=True):
    """A webhook delivery kept as it arrived, until the applier has applied it to the store
    (see :mod:`api.inbox`); ``reason`` set: a payload that cannot be applied, to be kept as
    a dead letter."""

    __tablename__ = "inbox"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    received_at: datetime
    reason: str | None = None
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ApplierState(SQLModel, table=True):
    """Where the applier stands, in the store every process and machine can read (one row).

    ``watermark`` is the highest inbox id applied, written in the transaction that applies
    it (so an event is applied once, also on SQLite where the inbox is a file of its own);
    ``heartbeat_at``/``pid``/``host`` say which applier leads and that it is alive;
    ``caught_up_at`` is the last time it found nothing left to apply. ``inbox_identity`` is
    the identity of the inbox the watermark counts in; when an inbox with another identity
    appears (the file was deleted or replaced), ``lost_since`` says from when acknowledged
    events may be lost, until a full pull from Label Studio has brought them back.
    """

    __tablename__ = "applier_state"

    id: int = Field(default=1, primary_key=True)
    watermark: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    inbox_identity: str | None = None
    heartbeat_at: datetime | None = None
    pid: int | None = None
    host: str | None = None
    caught_up_at: datetime | None = None
    replaced_at: datetime | None = None
    lost_since: datetime | None = None


class Member(SQLModel, table=True):
    """A Label Studio user as the service last read them (``GET /api/users``).

    ``id`` is Label Studio's user id, the key every judgement carries as ``annotator``; the
    names are only shown to QA leads (see :mod:`api.members`), never used as a key.
    """

    __tablename__ = "member"

    id: int = Field(primary_key=True)
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    seen_at: datetime


class TaskOverlapRow(SQLModel, table=True):
    """What the adaptive overlap policy wants of a task (``target`` annotators, from the
    ``annotators`` who labeled it so far) and what Label Studio was last told (``applied``);
    the two differ until the keeper's PATCH went through (see :mod:`api.overlap_keeper`)."""

    __tablename__ = "task_overlap"

    task_id: int = Field(primary_key=True)
    project_id: int = Field(index=True)
    annotators: int = 0
    target: int = 0
    reason: str = ""
    unsettled: int = 0
    decided_at: datetime | None = None
    applied: int | None = None
    applied_at: datetime | None = None
    attempts: int = 0
    tried_at: datetime | None = None
    error: str | None = None


class AdjudicationLink(SQLModel, table=True):
    """A clip sent to adjudication: the main project's clip and task, and the task that
    holds it in the adjudication project; ``turns`` are the clip's turn ids when it was
    sent (a decision on any other turn is not taken), ``disagreeing`` those the panel split
    on, ``reasons`` why it was sent. One per project and clip (a clip is sent once) and one
    per adjudication task (a task decides one clip)."""

    __tablename__ = "adjudication_link"
    __table_args__ = (UniqueConstraint("project_id", "clip_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    clip_id: str
    source_task_id: int
    adjudication_project_id: int
    adjudication_task_id: int = Field(index=True, unique=True)
    turns: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    disagreeing: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    sent_at: datetime
    # sha256 of the task's data as sent (see annotate.adjudicate.data_hash): a decision on
    # a task whose data a member changed since is not taken
    sent_hash: str | None = None
    # sha256 of the task's predictions as sent (annotate.adjudication_guard)
    predictions_hash: str | None = None
    # when the service first saw the task's data hash otherwise than as sent: from then on
    # no decision on this task is taken, even once the data is put back (the adjudicator
    # may have decided on what a member showed them); the clip must be sent again
    tampered_at: datetime | None = None
    # marked only for a change to the whole adjudication project (its settings, or a
    # PROJECT_UPDATED report of one): the re-send is not counted against the clip's
    # ``adjudication.max_resends``, which bounds what a member can do to one clip
    tampered_by_project: bool = False


class GoldClip(SQLModel, table=True):
    """A clip the import marked as gold (``--gold-share``): an expert answers it blind in
    the adjudication project, and each annotator's values on it are scored against that
    answer. Kept here, never in Label Studio, so annotators cannot tell a gold clip."""

    __tablename__ = "gold_clip"
    __table_args__ = (UniqueConstraint("project_id", "clip_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    clip_id: str
    session_id: str
    marked_at: datetime
    # when the clip first went to the adjudication project, where any member can read the
    # expert's answer: values saved after it are not scored (kept through a re-send)
    shown_at: datetime | None = None


class RepeatClip(SQLModel, table=True):
    """A hidden repeat: a task the import made as a second copy of a clip
    (``--repeat-share``), under a clip id and turn ids of the ordinary form. ``turns`` maps
    each of its turn ids to the original's. Its judgements are kept apart (under the
    negated project id, see :mod:`api.repeats`), out of every figure and export, and only
    compared with the same annotator's first pass."""

    __tablename__ = "repeat_clip"
    __table_args__ = (UniqueConstraint("project_id", "clip_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    clip_id: str
    original_clip_id: str
    session_id: str
    turns: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    made_at: datetime
    # the copy's task in Label Studio, once pushed: its events are recognised by it, never
    # by the task's data, which any member can edit
    task_id: int | None = Field(default=None, index=True)
