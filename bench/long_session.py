"""A long synthetic two-performer session folder: stereo audio, one espeak-ng voice a channel.

:func:`make_long_session` writes a session folder the importer reads (``session.yaml``,
``audio.flac``, ``transcript.vtt``) plus ``turns.json`` (every turn with its channel, emotion
and espeak-ng settings). Turns alternate between the performers (now and then one speaks
twice) with pauses of 0.2-1.2 s and, at 5 % of speaker changes, a 0.3 s overlap; each turn
says one to three lines of the example scene with the per-emotion pitch, rate and loudness of
``examples/generate_example.py`` (varied per turn). Performer ``i`` of ``session.yaml``
speaks on channel ``i``; the other channel carries a -24 dB bleed of each voice, and both a
seeded noise floor (-60 dBFS).

The folder is a cache: when it already holds a session made with the same arguments it is
returned as is. Rendering 60 minutes takes about half a minute (espeak-ng, 4 threads).

Run ``.venv/bin/python bench/long_session.py [folder] [--minutes 60]`` to write one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.generate_example import (  # noqa: E402
    EMOTIONS,
    PERFORMERS,
    PROSODY,
    SCRIPT,
    Prosody,
    jittered,
    render_turn,
    vtt_escape,
    vtt_timestamp,
)

SEED = 20261126
MANIFEST = "long_session.json"
MEDIA = "audio.flac"
TRANSCRIPT = "transcript.vtt"
TURNS = "turns.json"
PAUSE_S = (0.2, 1.2)
OVERLAP_S = 0.3
OVERLAP_SHARE = 0.05
BLEED_DB = -24.0
NOISE_DBFS = -60.0
BLOCK_S = 30.0
# Every performer speaks on their own channel; ids and names as in the example session.
VOICES = {p.id: p.voice for p in PERFORMERS}


@dataclass(frozen=True, slots=True)
class LongSession:
    """A written session folder and what it holds."""

    folder: Path
    media: Path
    transcript: Path
    turns_json: Path
    duration: float
    sample_rate: int
    n_turns: int
    speech_seconds: float

    def turns(self) -> list[dict]:
        """The turns: start, end (s), performer, channel, text, emotion, pitch, rate, amplitude."""
        return json.loads(self.turns_json.read_text(encoding="utf-8"))


def _render(text: str, voice: str, prosody: Prosody, sr: int, folder: Path, n: int) -> np.ndarray:
    """``text`` in ``voice`` at ``sr``, trimmed to the speech (1 % of peak), as int16."""
    y = render_turn("espeak-ng", voice, text, prosody, folder, sr=sr, name=f"turn-{n}.wav")
    loud = np.flatnonzero(np.abs(y) > 0.01 * float(np.abs(y).max()))
    y = y[int(loud[0]) : int(loud[-1]) + 1]
    return np.round(np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)


def _plan(minutes: float, rng: np.random.Generator) -> list[dict]:
    """Who says what with which emotion, until the scripted speech would fill ``minutes``.

    Lengths are estimated here (espeak-ng speaks about 14 characters a second at 175 words
    a minute) and made exact after rendering.
    """
    plan: list[dict] = []
    ids = [p.id for p in PERFORMERS]
    speaker = 0
    emotion = "neutral"
    budget, used = minutes * 60.0, 0.5
    lines = [turn.text for turn in SCRIPT]
    while used < budget:
        if plan and rng.random() < 0.85:
            speaker = 1 - speaker
        if rng.random() < 0.3:
            emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
        text = " ".join(lines[int(i)] for i in rng.integers(len(lines), size=rng.integers(1, 4)))
        prosody = jittered(PROSODY[emotion], rng)
        plan.append(
            {"performer": ids[speaker], "channel": speaker, "emotion": emotion, "text": text}
            | {"pitch": prosody.pitch, "rate": prosody.rate, "amplitude": prosody.amplitude}
        )
        used += len(text) / 14.0 * 175 / prosody.rate + float(np.mean(PAUSE_S))
    return plan


def _layout(
    plan: list[dict], lengths: list[int], sr: int, minutes: float, rng: np.random.Generator
) -> list[dict]:
    """Place the rendered turns on the timeline (whole milliseconds); drop what overflows."""
    end_limit = minutes * 60.0 - 0.5
    placed: list[dict] = []
    t_ms = 500
    previous_end_ms = previous_start_ms = 0
    for item, n in zip(plan, lengths, strict=True):
        if placed:
            changed = item["channel"] != placed[-1]["channel"]
            if changed and rng.random() < OVERLAP_SHARE:
                t_ms = max(previous_end_ms - round(OVERLAP_S * 1000), previous_start_ms + 100)
            else:
                t_ms = previous_end_ms + int(rng.integers(PAUSE_S[0] * 1000, PAUSE_S[1] * 1000))
        start = round(t_ms * sr / 1000)
        end_s = (start + n) / sr
        if end_s > end_limit:
            break
        placed.append(item | {"start": t_ms / 1000, "end": round(end_s, 6), "sample": start})
        previous_end_ms = int(np.ceil(end_s * 1000))
        previous_start_ms = t_ms
    return placed


def _write_audio(
    path: Path,
    noise_dbfs: float | None,
    bleed_db: float | None,
    turns: list[dict],
    clips: list[np.ndarray],
    sr: int,
    total: int,
    rng: np.random.Generator,
) -> None:
    """Mix the clips block by block into a 16-bit stereo FLAC (memory: one block)."""
    block = round(BLOCK_S * sr)
    bleed = 0.0 if bleed_db is None else 10 ** (bleed_db / 20)
    noise = 0.0 if noise_dbfs is None else 10 ** (noise_dbfs / 20)
    first = 0
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16", format="FLAC") as out:
        for b0 in range(0, total, block):
            b1 = min(total, b0 + block)
            buf = noise * rng.standard_normal((b1 - b0, 2)).astype(np.float32)
            while first < len(turns) and turns[first]["sample"] + len(clips[first]) <= b0:
                first += 1
            k = first
            while k < len(turns) and turns[k]["sample"] < b1:
                s0 = turns[k]["sample"]
                clip = clips[k].astype(np.float32) / 32767
                lo, hi = max(b0, s0), min(b1, s0 + len(clip))
                if hi > lo:
                    part = clip[lo - s0 : hi - s0]
                    own = turns[k]["channel"]
                    buf[lo - b0 : hi - b0, own] += part
                    buf[lo - b0 : hi - b0, 1 - own] += bleed * part
                k += 1
            out.write(np.clip(buf, -1.0, 1.0))


def _write_vtt(path: Path, turns: list[dict]) -> None:
    names = {p.id: p.name for p in PERFORMERS}
    blocks = ["WEBVTT"]
    for i, t in enumerate(turns):
        blocks.append(
            f"turn-{i}\n{vtt_timestamp(t['start'])} --> {vtt_timestamp(t['end'])}\n"
            f"<v {names[t['performer']]}>{vtt_escape(t['text'])}"
        )
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def _write_yaml(path: Path, session_id: str, minutes: float) -> None:
    lines = [
        f"id: {session_id}",
        f'title: "Long session ({minutes:g} min, synthetic)"',
        'prompt: "Lines of the cafe scene, replayed with changing emotions, for benchmarks."',
        f"media: {MEDIA}",
        f"transcript: {TRANSCRIPT}",
        "performers:            # performer i speaks on channel i of the media",
    ]
    for p in PERFORMERS:
        lines += [f"  - id: {p.id}", f"    name: {p.name}"]
    lines.append("synthetic: true")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_long_session(
    folder: str | Path,
    minutes: float = 60.0,
    sr: int = 44_100,
    *,
    seed: int = SEED,
    noise_dbfs: float | None = NOISE_DBFS,
    bleed_db: float | None = BLEED_DB,
    session_id: str | None = None,
) -> LongSession:
    """Write (or find, if already written with these arguments) a long session in ``folder``.

    Parameters
    ----------
    folder : str or Path
        The session folder; created if missing.
    minutes : float
        Length of the recording.
    sr : int
        Sample rate of the stereo FLAC, Hz.
    seed : int
        Seed of the script, pauses, prosody variation and noise.
    noise_dbfs : float or None
        RMS level of the white noise floor on both channels, dB re full scale; None: none.
    bleed_db : float or None
        Level of each voice on the other channel relative to its own, dB; None: none.
    session_id : str, optional
        The session's id; default ``long-<minutes>min``.

    Returns
    -------
    LongSession
    """
    folder = Path(folder)
    session_id = session_id or f"long-{minutes:g}min".replace(".", "-")
    wanted = {"minutes": minutes, "sr": sr, "seed": seed, "id": session_id, "version": 1}
    wanted |= {"noise_dbfs": noise_dbfs, "bleed_db": bleed_db}
    manifest = folder / MANIFEST
    if manifest.is_file():
        known = json.loads(manifest.read_text(encoding="utf-8"))
        if {k: known.get(k) for k in wanted} == wanted and (folder / MEDIA).is_file():
            return _session(folder, known)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found on PATH; install the Debian package espeak-ng")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    plan = _plan(minutes, rng)
    with tempfile.TemporaryDirectory(prefix="long-session-") as tmp, ThreadPoolExecutor(4) as pool:
        clips = list(
            pool.map(
                lambda n: _render(
                    plan[n]["text"],
                    VOICES[plan[n]["performer"]],
                    Prosody(plan[n]["pitch"], plan[n]["rate"], plan[n]["amplitude"]),
                    sr,
                    Path(tmp),
                    n,
                ),
                range(len(plan)),
            )
        )
    turns = _layout(plan, [len(c) for c in clips], sr, minutes, rng)
    clips = clips[: len(turns)]
    total = round(minutes * 60.0 * sr)
    _write_audio(folder / MEDIA, noise_dbfs, bleed_db, turns, clips, sr, total, rng)
    _write_vtt(folder / TRANSCRIPT, turns)
    _write_yaml(folder / "session.yaml", session_id, minutes)
    for t in turns:
        del t["sample"]
    (folder / TURNS).write_text(json.dumps(turns, indent=0), encoding="utf-8")
    info = wanted | {
        "duration": total / sr,
        "n_turns": len(turns),
        "speech_seconds": round(sum(t["end"] - t["start"] for t in turns), 3),
    }
    manifest.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return _session(folder, info)


def _session(folder: Path, info: dict) -> LongSession:
    return LongSession(
        folder=folder,
        media=folder / MEDIA,
        transcript=folder / TRANSCRIPT,
        turns_json=folder / TURNS,
        duration=float(info["duration"]),
        sample_rate=int(info["sr"]),
        n_turns=int(info["n_turns"]),
        speech_seconds=float(info["speech_seconds"]),
    )


def main() -> None:
    """Write a long session folder and print what it holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, default=Path(tempfile.gettempdir()) / "improv-long"
    )
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sr", type=int, default=44_100)
    args = parser.parse_args()
    t0 = time.perf_counter()
    s = make_long_session(args.folder, args.minutes, args.sr)
    print(
        f"{s.folder}: {s.duration / 60:.1f} min, {s.n_turns} turns, "
        f"{s.speech_seconds / 60:.1f} min of speech, {s.sample_rate} Hz stereo "
        f"({time.perf_counter() - t0:.1f} s)"
    )


if __name__ == "__main__":
    main()
