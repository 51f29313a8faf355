"""Decode transcript files whatever encoding their tool wrote them in.

Tools disagree: Praat writes UTF-16 with a byte-order mark, Excel writes Windows-1252 CSV,
most others write UTF-8 (ELAN, WhisperX, subtitle editors), some with a BOM. The rules:

1. a BOM decides: UTF-8, UTF-16 LE or UTF-16 BE;
2. no BOM but NUL bytes in every other position of the start: UTF-16 without a BOM
   (the byte order the NULs show), with a warning;
3. otherwise UTF-8 if the bytes are valid UTF-8;
4. otherwise Windows-1252, with a warning naming the file and the first non-UTF-8 byte;
   the five bytes Windows-1252 leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) are an error
   naming the file, the line and the byte.

Example
-------
>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "t.srt"
>>> _ = path.write_bytes("café".encode("cp1252"))
>>> text, encoding, warnings = read_text(path)
>>> text, encoding
('café', 'cp1252')
>>> warnings[0].endswith("read as Windows-1252")
True
"""

from __future__ import annotations

import codecs
from pathlib import Path

from schemas.errors import TranscriptError

__all__ = ["decode_text", "read_text", "split_lines"]

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NAMES = {
    "utf-8-sig": "UTF-8",
    "utf-8": "UTF-8",
    "utf-16-le": "UTF-16 LE",
    "utf-16-be": "UTF-16 BE",
    "cp1252": "Windows-1252",
}


def _line_of(raw: bytes, position: int, encoding: str) -> int:
    """The 1-based line holding byte ``position`` of ``raw`` decoded as ``encoding``."""
    head = raw[:position]
    if encoding.startswith("utf-16"):
        head = head[: len(head) - len(head) % 2]
    return head.decode(encoding, errors="replace").count("\n") + 1


def _sniff_utf16(raw: bytes) -> str | None:
    """``utf-16-le``/``-be`` when the first bytes look like BOM-less UTF-16 text."""
    sample = raw[:512]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) >= 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def decode_text(raw: bytes, source: str, *, fallback: bool = True) -> tuple[str, str, list[str]]:
    """Decode a transcript's bytes (the pure form of :func:`read_text`).

    Parameters
    ----------
    raw : bytes
        The file's content.
    source : str
        The file name used in messages.
    fallback : bool
        Whether bytes that are not UTF-8 are read as Windows-1252 (with a warning); if
        false they are an error naming the line.

    Returns
    -------
    text : str
        The text, without a BOM.
    encoding : str
        The Python codec that decoded it: ``utf-8``, ``utf-8-sig``, ``utf-16-le``,
        ``utf-16-be`` or ``cp1252``.
    warnings : list of str
        A line for each guess that was made (BOM-less UTF-16, the Windows-1252 fallback).

    Raises
    ------
    TranscriptError
        Naming ``source``, the line and the byte that cannot be decoded, or a NUL
        character (a binary file).
    """
    warnings: list[str] = []
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    why = "as its byte-order mark says"
    if encoding is None:
        encoding = _sniff_utf16(raw)
        why = "as its NUL bytes suggest"
        if encoding is not None:
            warnings.append(
                f"{source}: no byte-order mark but NUL bytes in every other position; "
                f"read as {_NAMES[encoding]}"
            )
    if encoding is None:
        try:
            text = raw.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            bad = raw[exc.start]
            line = _line_of(raw, exc.start, "utf-8")
            if not fallback:
                raise TranscriptError(f"{source}:{line}: not valid UTF-8 text") from None
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError as exc2:
                raise TranscriptError(
                    f"{source}:{_line_of(raw, exc2.start, 'cp1252')}: byte "
                    f"0x{raw[exc2.start]:02X} is neither UTF-8 nor Windows-1252 text; "
                    "expected a text file in UTF-8 (or UTF-16 with a byte-order mark)"
                ) from None
            encoding = "cp1252"
            warnings.append(f"{source}:{line}: byte 0x{bad:02X} is not UTF-8; read as Windows-1252")
    else:
        bom = next((len(b) for b, name in _BOMS if name == encoding and raw.startswith(b)), 0)
        body = raw[bom:]
        codec = "utf-8" if encoding == "utf-8-sig" else encoding
        try:
            text = body.decode(codec)
        except UnicodeDecodeError as exc:
            line = _line_of(body, exc.start, codec)
            if codec == "utf-8" and not fallback:
                raise TranscriptError(f"{source}:{line}: not valid UTF-8 text") from None
            raise TranscriptError(
                f"{source}:{line}: byte 0x{body[exc.start]:02X} cannot be decoded as "
                f"{_NAMES[encoding]} ({exc.reason}); expected {_NAMES[encoding]} text {why}"
            ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise TranscriptError(
            f"{source}:{text.count(chr(10), 0, nul) + 1}: NUL character in the text; "
            "expected a text file, not a binary one"
        )
    return text, encoding, warnings


def read_text(path: str | Path, *, fallback: bool = True) -> tuple[str, str, list[str]]:
    """Read and decode a text file; see :func:`decode_text` for the rules and returns.

    Raises
    ------
    TranscriptError
        When the file cannot be read, or cannot be decoded (naming the line and byte).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read transcript ({exc.strerror})") from None
    return decode_text(raw, str(path), fallback=fallback)


def split_lines(text: str) -> list[str]:
    """Split on CR, LF and CRLF only (``str.splitlines`` also splits on U+2028, U+0085 ...).

    >>> split_lines("a\\r\\nb\\rc\\u2028d\\n")
    ['a', 'b', 'c\\u2028d', '']
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
