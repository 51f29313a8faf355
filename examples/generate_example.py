"""Generate the synthetic example session ``examples/sessions/cafe-breakup/``.

The scene is a short two-performer improv ("Cafe breakup") rendered with two espeak-ng voices.
Every turn has an *intended* emotion; the generator varies pitch, speaking rate and loudness
per emotion so that the emotion arc is audible and shows in acoustic features (F0, energy,
onset rate). The exact start and end of each turn's speech in the final file is recorded.

Outputs (overwritten on each run):

- ``audio.wav``: 16 kHz mono 16-bit PCM.
- ``transcript.vtt``: WebVTT, one cue per turn, ``<v Name>text``.
- ``session.yaml``: session metadata, performers and the intended emotion arc.

The output is deterministic for a given espeak-ng version (espeak-ng renders identically for
identical arguments; pauses, per-turn jitter and the faint noise floor come from a seeded
generator). Requires ``espeak-ng`` on ``PATH`` and the Python packages numpy, soundfile and
soxr (a dependency of librosa).

Regenerate with::

    .venv/bin/python examples/generate_example.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
"""Sample rate of the output WAV (Hz)."""

SAMPLES_PER_MS = SAMPLE_RATE // 1000
"""Turn boundaries are placed on whole milliseconds, i.e. multiples of this many samples."""

SEED = 20240601
"""Seed for pauses, per-turn jitter and the noise floor."""

LEAD_IN_S = 0.5
"""Silence before the first turn (seconds)."""

TAIL_S = 0.5
"""Silence after the last turn (seconds)."""

PAUSE_RANGE_S = (0.3, 1.0)
"""Range of the seeded pause between consecutive turns (seconds)."""

TRIM_THRESHOLD = 0.01
"""Speech starts/ends at the first/last sample above this fraction of the render's peak."""

NOISE_FLOOR_DBFS = -66.0
"""RMS level of the faint seeded background noise (keeps pauses from being digital zero)."""

SESSION_ID = "cafe-breakup"
TITLE = "Cafe breakup"
PROMPT = (
    "A couple meets at their usual cafe: she has big news she can't wait to share, "
    "and it is going to end their relationship."
)

EMOTIONS = ("neutral", "joy", "sadness", "anger", "fear", "surprise", "disgust")


@dataclass(frozen=True)
class Performer:
    """A performer of the scene and the espeak-ng voice that renders them."""

    id: str
    name: str
    voice: str


@dataclass(frozen=True)
class Prosody:
    """espeak-ng settings for one emotion: pitch (0-99), rate (words/min), amplitude (0-200)."""

    pitch: int
    rate: int
    amplitude: int


@dataclass(frozen=True)
class Turn:
    """One scripted turn: who speaks, with which intended emotion, and what they say."""

    performer: str
    emotion: str
    text: str


@dataclass(frozen=True)
class RenderedTurn:
    """A turn placed in the final audio, with its exact speech interval in seconds."""

    index: int
    turn: Turn
    start: float
    end: float


PERFORMERS: tuple[Performer, ...] = (
    Performer(id="p01", name="Maya", voice="en-us+f2"),
    Performer(id="p02", name="Theo", voice="en-us+m3"),
)

# Per-emotion prosody. Baseline (neutral) is espeak-ng's default pitch 50 at a calm rate;
# amplitude stays <= 160 because espeak-ng starts clipping towards 200.
PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(pitch=50, rate=178, amplitude=100),
    "joy": Prosody(pitch=68, rate=208, amplitude=140),
    "sadness": Prosody(pitch=32, rate=142, amplitude=60),
    "anger": Prosody(pitch=52, rate=218, amplitude=160),
    "fear": Prosody(pitch=74, rate=222, amplitude=110),
    "surprise": Prosody(pitch=88, rate=192, amplitude=130),
    "disgust": Prosody(pitch=28, rate=152, amplitude=100),
}

# The scene. Arc: neutral small talk -> joy (the job) -> surprise (Lisbon) -> sadness (the
# breakup) -> anger -> disgust -> fear -> tender neutral -> joy at the end.
SCRIPT: tuple[Turn, ...] = (
    Turn("p01", "neutral", "Hi. Sorry I'm late, the bus took forever."),
    Turn("p02", "neutral", "It's fine. I already ordered you the oat latte, the usual."),
    Turn("p01", "neutral", "Thanks. So how was your week? Still busy at the shop?"),
    Turn("p02", "neutral", "Same as ever. Lots of bikes, not much money."),
    Turn("p01", "joy", "Okay, I can't hold it in. I got the job! The design job!"),
    Turn("p02", "joy", "No way! That's amazing! I knew they would love your portfolio!"),
    Turn("p01", "joy", "They called last night. I screamed so loud!"),
    Turn("p02", "joy", "We have to celebrate. Dinner tonight, my treat, anywhere you want."),
    Turn("p02", "neutral", "So where is the office? Downtown, near the river?"),
    Turn("p01", "neutral", "Not exactly. It's in Lisbon. I start in March."),
    Turn("p02", "surprise", "Lisbon? As in Portugal? You're moving to another country?"),
    Turn("p01", "sadness", "I wanted to tell you in person. I've known for weeks."),
    Turn("p02", "surprise", "Weeks? You knew for weeks and didn't say a word?"),
    Turn("p01", "sadness", "Because I knew what it would mean for us. I think we should stop."),
    Turn("p02", "sadness", "Stop. You mean us. You're breaking up with me over coffee."),
    Turn("p02", "sadness", "I was going to ask you to move in with me next month."),
    Turn("p01", "surprise", "You were? You never said anything about moving in!"),
    Turn("p02", "sadness", "I had a key cut already. It's in my pocket right now."),
    Turn("p01", "sadness", "I'm so sorry. I didn't know. That makes this so much worse."),
    Turn("p02", "anger", "You decided this alone! Two years, and I don't even get a vote!"),
    Turn("p01", "anger", "Don't make this about you! This is my career, my one real chance!"),
    Turn("p02", "anger", "And I'm what, a waiting room? Just something you sit in?"),
    Turn("p01", "anger", "That is not fair and you know it! I stayed here for you last year!"),
    Turn("p01", "neutral", "Jonah helped me with the application, that's all."),
    Turn("p02", "disgust", "Jonah. Of course. Ugh, that smug guy who calls everyone buddy."),
    Turn("p01", "disgust", "Ugh, and this latte is sour. Did they make it with old milk?"),
    Turn("p02", "neutral", "I'm sorry. I shouldn't have yelled. People are staring."),
    Turn("p01", "fear", "Honestly, I'm terrified. I don't know anyone there."),
    Turn("p01", "fear", "What if I hate it? What if I fail?"),
    Turn("p02", "neutral", "There will be something. You'd still have me, as a friend at least."),
    Turn("p02", "fear", "I'm scared too. Scared I'll just be some guy you used to know."),
    Turn("p01", "neutral", "You'll never be that. You taught me to ride a bike at twenty six."),
    Turn("p02", "joy", "You crashed into a hedge. Three times! The same hedge!"),
    Turn("p01", "joy", "It was a very aggressive hedge!"),
    Turn("p02", "neutral", "So, March. That gives us a few weeks to say goodbye properly."),
    Turn("p01", "surprise", "Wait, you still want to spend time with me? After this?"),
    Turn("p02", "neutral", "Of course. I'm hurt, but I'm not going anywhere. Yet."),
    Turn("p01", "joy", "Then let's do it! A goodbye tour. Every cafe in the city!"),
    Turn("p02", "joy", "Except this one. Their milk is clearly plotting against you."),
    Turn("p01", "joy", "Deal! And you're visiting me in Lisbon. I'll buy the first coffee!"),
)


def find_espeak() -> str:
    """Return the path of the espeak-ng executable, or raise if it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng not found on PATH (apt-get install espeak-ng)")
    return exe


def render_turn(
    espeak: str,
    voice: str,
    text: str,
    prosody: Prosody,
    workdir: Path,
    *,
    sr: int = SAMPLE_RATE,
    name: str = "turn.wav",
) -> np.ndarray:
    """Render ``text`` with espeak-ng and return float32 samples at ``sr`` (default
    :data:`SAMPLE_RATE`), mono.

    espeak-ng writes a 22.05 kHz WAV (``workdir / name``, removed after reading); it is
    resampled with soxr (deterministic, no dither).
    """
    wav = workdir / name
    subprocess.run(
        [
            espeak,
            "-v",
            voice,
            "-p",
            str(prosody.pitch),
            "-s",
            str(prosody.rate),
            "-a",
            str(prosody.amplitude),
            "-w",
            str(wav),
            text,
        ],
        check=True,
        capture_output=True,
    )
    samples, rate = sf.read(wav, dtype="float32", always_2d=False)
    wav.unlink()
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if rate != sr:
        samples = soxr.resample(samples, rate, sr, quality="HQ").astype(np.float32)
    return samples


def trim_silence(samples: np.ndarray, threshold: float = TRIM_THRESHOLD) -> np.ndarray:
    """Cut leading and trailing silence so the result starts and ends on speech.

    Speech is any sample whose magnitude exceeds ``threshold`` times the render's peak.
    The kept length is rounded up to a whole millisecond (extending into the trailing
    near-silence of the render) so that both turn boundaries fall exactly on milliseconds.
    """
    magnitude = np.abs(samples)
    peak = float(magnitude.max()) if samples.size else 0.0
    if peak == 0.0:
        raise ValueError("espeak-ng rendered silence")
    loud = np.flatnonzero(magnitude > threshold * peak)
    first, last = int(loud[0]), int(loud[-1]) + 1
    length = -(-(last - first) // SAMPLES_PER_MS) * SAMPLES_PER_MS
    if first + length > samples.size:
        samples = np.concatenate([samples, np.zeros(first + length - samples.size, np.float32)])
    return samples[first : first + length]


def jittered(prosody: Prosody, rng: np.random.Generator) -> Prosody:
    """Return ``prosody`` with a small seeded per-turn variation, clamped to espeak's ranges."""
    pitch = int(np.clip(prosody.pitch + rng.integers(-3, 4), 0, 99))
    rate = int(np.clip(prosody.rate + rng.integers(-6, 7), 80, 450))
    amplitude = int(np.clip(prosody.amplitude + rng.integers(-5, 6), 0, 160))
    return Prosody(pitch=pitch, rate=rate, amplitude=amplitude)


def build_scene(
    script: tuple[Turn, ...] = SCRIPT, seed: int = SEED
) -> tuple[np.ndarray, list[RenderedTurn]]:
    """Render the whole scene; return the int16 signal and the turns with exact times.

    Turns are laid out one after another with a seeded pause of :data:`PAUSE_RANGE_S`
    (whole milliseconds) between them; start and end times are exact in the returned audio.
    """
    espeak = find_espeak()
    voices = {p.id: p.voice for p in PERFORMERS}
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = []
    rendered: list[RenderedTurn] = []
    cursor = round(LEAD_IN_S * SAMPLE_RATE)
    pieces.append(np.zeros(cursor, np.float32))
    with tempfile.TemporaryDirectory(prefix="improv-example-") as tmp:
        for index, turn in enumerate(script):
            if turn.emotion not in EMOTIONS:
                raise ValueError(f"turn {index}: unknown emotion {turn.emotion!r}")
            if index > 0:
                pause_ms = int(rng.integers(PAUSE_RANGE_S[0] * 1000, PAUSE_RANGE_S[1] * 1000 + 1))
                gap = pause_ms * SAMPLES_PER_MS
                pieces.append(np.zeros(gap, np.float32))
                cursor += gap
            prosody = jittered(PROSODY[turn.emotion], rng)
            speech = trim_silence(
                render_turn(espeak, voices[turn.performer], turn.text, prosody, Path(tmp))
            )
            start, end = cursor, cursor + speech.size
            rendered.append(RenderedTurn(index, turn, start / SAMPLE_RATE, end / SAMPLE_RATE))
            pieces.append(speech)
            cursor = end
    pieces.append(np.zeros(round(TAIL_S * SAMPLE_RATE), np.float32))
    signal = np.concatenate(pieces)
    noise_rms = 10 ** (NOISE_FLOOR_DBFS / 20)
    signal = signal + rng.normal(0.0, noise_rms, signal.size).astype(np.float32)
    peak = float(np.abs(signal).max())
    if peak > 0.99:  # one global gain keeps the relative loudness of the emotions
        signal *= 0.99 / peak
    pcm = np.round(signal * 32767).astype(np.int16)
    return pcm, rendered


def vtt_timestamp(seconds: float) -> str:
    """Format seconds as a WebVTT timestamp ``HH:MM:SS.mmm``."""
    total_ms = round(seconds * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def vtt_escape(text: str) -> str:
    """Escape the characters WebVTT cue text reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_vtt(path: Path, turns: list[RenderedTurn]) -> None:
    """Write one WebVTT cue per turn, voice-tagged with the performer's display name."""
    names = {p.id: p.name for p in PERFORMERS}
    blocks = ["WEBVTT"]
    for rt in turns:
        blocks.append(
            f"turn-{rt.index}\n"
            f"{vtt_timestamp(rt.start)} --> {vtt_timestamp(rt.end)}\n"
            f"<v {names[rt.turn.performer]}>{vtt_escape(rt.turn.text)}"
        )
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def write_session_yaml(path: Path, turns: list[RenderedTurn]) -> None:
    """Write ``session.yaml`` (strings are JSON-quoted, which is valid YAML)."""
    lines = [
        f"id: {SESSION_ID}",
        f"title: {json.dumps(TITLE)}",
        f"prompt: {json.dumps(PROMPT)}",
        "media: audio.wav",
        "transcript: transcript.vtt",
        "performers:",
    ]
    for i, p in enumerate(PERFORMERS):
        lines += [f"  - id: {p.id}", f"    name: {p.name}"]
        lines.append(f"    voice: {p.voice}" + ("   # synthetic" if i == 0 else ""))
    lines += [
        "synthetic: true",
        "intended:            # the scene's emotion arc as the generator rendered it,"
        " one entry per turn",
    ]
    for rt in turns:
        lines.append(
            f"  - {{turn: {rt.index}, performer: {rt.turn.performer}, "
            f"start: {rt.start:.3f}, end: {rt.end:.3f}, emotion: {rt.turn.emotion}}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(out_dir: Path, seed: int = SEED) -> list[RenderedTurn]:
    """Render the scene and write ``audio.wav``, ``transcript.vtt`` and ``session.yaml``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pcm, turns = build_scene(SCRIPT, seed)
    sf.write(out_dir / "audio.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
    write_vtt(out_dir / "transcript.vtt", turns)
    write_session_yaml(out_dir / "session.yaml", turns)
    return turns


def main() -> None:
    """Command-line entry point."""
    default_out = Path(__file__).resolve().parent / "sessions" / SESSION_ID
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=default_out, help="output folder")
    parser.add_argument("--seed", type=int, default=SEED, help="seed for pauses and jitter")
    args = parser.parse_args()
    turns = generate(args.out, args.seed)
    duration = sf.info(args.out / "audio.wav").duration
    print(f"wrote {args.out}: {len(turns)} turns, {duration:.2f} s")


if __name__ == "__main__":
    main()
