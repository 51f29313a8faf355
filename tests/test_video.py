"""Sessions with video: clip cuts, video tasks, timeline shift spans (ffmpeg, real server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from annotate.config import Settings
from annotate.labelstudio import (
    connect,
    ensure_project,
    iter_tasks,
    session_pusher,
)
from importers import ImportOptions, import_sessions, prepare_session
from importers.clips import VIDEO_FPS, audio_window, clip_file, make_clips
from importers.session import load_session, video_duration
from schemas.codec import decode_annotation, encode_annotation
from schemas.errors import MediaError, SessionError
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, missing
from tests.payloads import dialogue

TAX = load_taxonomy()
if shutil.which("ffmpeg") is None:  # every test here cuts or muxes video with ffmpeg
    missing("ffmpeg is not on PATH (scripts/system-deps.sh test installs it)", module=True)


def _video_session(tmp_path: Path, seconds: float = 50.0) -> Path:
    """The example session cut to its first ``seconds``, with a black video track."""
    folder = tmp_path / "video-scene"
    shutil.copytree(EXAMPLE, folder)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=320x240:r=30",
            "-t",
            "160",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(folder / "scene.mp4"),
        ],
        check=True,
    )
    meta = (folder / "session.yaml").read_text()
    meta = meta.replace("id: cafe-breakup", "id: cafe-video") + "video: scene.mp4\n"
    (folder / "session.yaml").write_text(meta)
    return folder


def _duration(path: Path) -> float:
    return video_duration(path)


def test_video_clips_are_cut_and_tasks_carry_them(tmp_path: Path) -> None:
    folder = _video_session(tmp_path)
    media = tmp_path / "media"
    session, tasks = prepare_session(folder, media, TAX, ImportOptions(45.0, video=True))
    clips = make_clips(session, 45.0)
    assert len(tasks) == len(clips)
    for clip, t in zip(clips, tasks, strict=True):
        data = t["data"]
        assert data["video"] == f"/data/local-files/?d=cafe-video/{clip_file(clip, 'mp4')}"
        assert data["fps"] == VIDEO_FPS
        start, end = audio_window(session, clip)
        cut = _duration(media / "cafe-video" / clip_file(clip, "mp4"))
        assert cut == pytest.approx(end - start, abs=0.1)


def test_video_project_needs_video_and_bad_video_is_named(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match=r"the project shows video .* but the session has none"):
        prepare_session(EXAMPLE, tmp_path / "media", TAX, ImportOptions(45.0, video=True))
    folder = _video_session(tmp_path)
    (folder / "scene.mp4").write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match=r"scene\.mp4: no video stream"):
        load_session(folder)


def test_timeline_spans_round_trip_in_frames() -> None:
    lines = dialogue(2)
    spans = [
        {
            "start": 1.2,
            "end": 2.4,
            "from": "joy",
            "to": "fear",
            "trigger": "self-initiated",
            "onset": "gradual",
        }
    ]
    result = encode_annotation(lines, {0: {"emotion": "joy"}}, TAX, spans, fps=VIDEO_FPS)
    region = next(i for i in result if i["from_name"] == "shift")
    assert region["type"] == "timelinelabels" and region["to_name"] == "video"
    assert region["value"]["ranges"] == [{"start": 31, "end": 60}]
    decoded = decode_annotation(
        {"id": 1, "completed_by": 3, "result": result},
        {"dialogue": lines, "fps": VIDEO_FPS, "audio_offset": 10.0, "session_id": "s"},
        TAX,
    )
    (shift,) = decoded.shifts
    assert (shift.start, shift.end) == (11.2, 12.4)
    assert (shift.from_emotion, shift.to_emotion, shift.trigger, shift.onset) == (
        "joy",
        "fear",
        "self-initiated",
        "gradual",
    )
    # without a frame rate the times cannot be known: counted, not guessed
    blind = decode_annotation(
        {"id": 1, "completed_by": 3, "result": result}, {"dialogue": lines}, TAX
    )
    assert blind.shifts == () and blind.skipped == {"shift without times": 1}


@pytest.mark.integration
def test_video_project_on_the_real_server(label_studio: Settings, tmp_path: Path) -> None:
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Video sessions", "video": True}
            )
        }
    )
    client = connect(settings)
    project = ensure_project(client, settings, TAX, video=True)
    assert "<TimelineLabels" in client.projects.get(id=project.id).label_config

    push = session_pusher(client, project.id, settings.media_path, drop_intended=True)

    report = import_sessions(
        _video_session(tmp_path),
        media_root=settings.media_path,
        taxonomy=TAX,
        max_seconds=45.0,
        push=push,
        video=True,
    )
    assert report.failed == {} and report.created > 0
    (first, *_) = list(iter_tasks(client, project.id))
    answer = httpx.get(
        settings.label_studio.url + first.data["video"],
        timeout=30,
        headers={"Authorization": f"Token {settings.label_studio.token}"},
    )
    assert answer.status_code == 200
    assert answer.content[4:8] == b"ftyp"  # an MP4
    result = encode_annotation(
        first.data["dialogue"],
        {0: {"emotion": "joy"}},
        TAX,
        [{"start": 1.0, "end": 2.0, "from": "neutral", "to": "joy"}],
        fps=first.data["fps"],
    )
    made = client.annotations.create(id=first.id, result=result)
    decoded = decode_annotation(
        {"id": made.id, "completed_by": made.completed_by, "result": made.result}, first.data, TAX
    )
    assert len(decoded.shifts) == 1 and decoded.skipped == {}
