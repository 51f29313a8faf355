"""Generate the Label Studio labeling interface from a taxonomy.

The layout: the clip's audio synced with the diarised dialogue; one region per turn
(pre-annotated, so annotators only pick values) with the turn-level dimensions shown when a
turn is selected; shift spans on the audio timeline with their own from/to/trigger/onset
controls; a relation from a shift span to the turn that caused it; a free-text note per clip.

Control names are part of the result format the codec reads: ``turn`` (the per-turn
ParagraphLabels), one control per dimension (its name), ``<shift>`` (the span Labels) with
``<shift>_from``, ``<shift>_to``, ``<shift>_trigger``, ``<shift>_onset``, and ``note``; a
relation labeled :data:`TRIGGER_RELATION` joins a shift span to the turn that caused it.

Example
-------
>>> from schemas.taxonomy import load_taxonomy
>>> xml = label_config(load_taxonomy())
>>> '<Choices name="emotion" toName="dialogue"' in xml
True
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from schemas.taxonomy import Dimension, Taxonomy

AUDIO = "audio"
VIDEO = "video"
DIALOGUE = "dialogue"
TURN = "turn"
NOTE = "note"
CONTEXT = "context"
PANEL = "panel"
SHIFT_PARTS = ("from", "to", "trigger", "onset")
# The label of the relation from a shift span to the turn that set it off.
TRIGGER_RELATION = "caused by"


def shift_control(taxonomy: Taxonomy, part: str) -> str:
    """The name of a shift span's per-region control (``part`` in :data:`SHIFT_PARTS`)."""
    return f"{taxonomy.shift.name}_{part}"


def _attrs(**attrs: object) -> str:
    out = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = {
            "to_name": "toName",
            "per_region": "perRegion",
            "show_inline": "showInline",
            "max_rating": "maxRating",
            "when_tag_name": "whenTagName",
            "visible_when": "visibleWhen",
            "audio_url": "audioUrl",
            "name_key": "nameKey",
            "text_key": "textKey",
            "max_submissions": "maxSubmissions",
            "class_": "className",
            "frameRate": "frameRate",
        }.get(key, key)
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(f"{name}={quoteattr(str(value))}")
    return " ".join(out)


def _choices(
    name: str, to_name: str, values: tuple[str, ...], hotkeys: tuple[str | None, ...], title: str
) -> list[str]:
    attrs = _attrs(
        name=name, to_name=to_name, per_region=True, choice="single-radio", show_inline=True
    )
    lines = [f'    <Header value={quoteattr(title)} size="6"/>', f"    <Choices {attrs}>"]
    for value, hotkey in zip(values, hotkeys, strict=True):
        lines.append(f"      <Choice {_attrs(value=value, hotkey=hotkey)}/>")
    lines.append("    </Choices>")
    return lines


def _dimension(dim: Dimension) -> list[str]:
    if dim.kind == "choice":
        return _choices(
            dim.name, DIALOGUE, dim.values, tuple(label.hotkey for label in dim.labels), dim.title
        )
    if dim.as_choices:
        # Rating stars start at 1 and take no keys: other scales, and scales with hotkeys,
        # are offered as numbered choices (one keystroke per turn).
        values = tuple(str(v) for v in dim.scale)
        keys = dim.hotkeys or (None,) * len(values)
        return _choices(dim.name, DIALOGUE, values, keys, dim.title)
    attrs = _attrs(
        name=dim.name, to_name=DIALOGUE, per_region=True, max_rating=dim.max, hotkey=dim.hotkey
    )
    return [f'    <Header value={quoteattr(dim.title)} size="6"/>', f"    <Rating {attrs}/>"]


def _shift_controls(taxonomy: Taxonomy, target: str) -> list[str]:
    shift = taxonomy.shift
    emotion = taxonomy.emotion
    none = (None,) * len(emotion.values)
    lines = [f"  <View {_attrs(visible_when='region-selected', when_tag_name=shift.name)}>"]
    for part, values, keys, title in (
        ("from", emotion.values, shift.emotion_hotkeys(emotion, "from") or none, "Shift from"),
        ("to", emotion.values, shift.emotion_hotkeys(emotion, "to") or none, "Shift to"),
        (
            "trigger",
            shift.trigger,
            shift.trigger_hotkeys or (None,) * len(shift.trigger),
            "Trigger",
        ),
        ("onset", shift.onset, shift.onset_hotkeys or (None,) * len(shift.onset), "Onset"),
    ):
        lines += _choices(shift_control(taxonomy, part), target, values, keys, title)
    return [*lines, "  </View>"]


def label_config(taxonomy: Taxonomy, *, video: bool = False, adjudication: bool = False) -> str:
    """The Label Studio XML label config for ``taxonomy``.

    The task data it expects: ``audio`` (URL of the clip's audio), ``dialogue`` (a list of
    ``{"speaker", "text", "start", "end"}`` with times in clip seconds), ``title``,
    ``prompt`` and ``context`` (the turns before the clip, as read-only text); with
    ``video``, also ``video`` (URL of the clip's video) and ``fps`` (its
    frame rate). Shift spans are marked on the audio waveform, or with ``video`` on the
    video's timeline (TimelineLabels, in frames), and the video plays in sync with the audio.
    With ``adjudication``, also ``panel``: what each annotator gave each turn, as read-only
    text above the dialogue (the adjudication project, :mod:`annotate.adjudicate`).
    """
    shift = taxonomy.shift
    label = _attrs(value=shift.title, hotkey=shift.hotkey, background="#ff7a45")
    lines = [
        "<View>",
        '  <Header value="$title"/>',
        '  <View style="color:#555;margin-bottom:8px"><Text name="prompt" value="$prompt"/></View>',
        f'  <View style="color:#777;font-style:italic;margin-bottom:8px">'
        f"<Text {_attrs(name=CONTEXT, value='$context')}/></View>",
    ]
    if adjudication:
        lines += [
            '  <View style="background:#fff7e6;padding:8px;margin-bottom:8px;'
            'white-space:pre-wrap">',
            '  <Header value="The panel\'s labels (⚠ marks the turns it split on)" size="6"/>',
            f"  <Text {_attrs(name=PANEL, value='$panel')}/>",
            "  </View>",
        ]
    if video:
        lines += [
            f"  <Video {_attrs(name=VIDEO, value='$video', sync=AUDIO, frameRate='$fps', height=280)}/>",  # noqa: E501
            f"  <TimelineLabels {_attrs(name=shift.name, to_name=VIDEO)}>",
            f"    <Label {label}/>",
            "  </TimelineLabels>",
            f"  <Audio {_attrs(name=AUDIO, value='$audio', sync=VIDEO, hotkey='space')}/>",
            *_shift_controls(taxonomy, VIDEO),
        ]
    else:
        lines += [
            f"  <Labels {_attrs(name=shift.name, to_name=AUDIO)}>",
            f"    <Label {label}/>",
            "  </Labels>",
            f"  <Audio {_attrs(name=AUDIO, value='$audio', sync=DIALOGUE, hotkey='space')}/>",
            *_shift_controls(taxonomy, AUDIO),
        ]
    paragraphs = _attrs(
        name=DIALOGUE,
        value="$dialogue",
        layout="dialogue",
        audio_url="$audio",
        sync=AUDIO,
        name_key="speaker",
        text_key="text",
    )
    # The dialogue and the selected turn's controls side by side, so that the controls
    # stay in view while the dialogue scrolls.
    lines += [
        '  <View style="display:flex;gap:16px;align-items:flex-start">',
        '  <View style="flex:3;min-width:0;max-height:420px;overflow-y:auto">',
        f"  <ParagraphLabels {_attrs(name=TURN, to_name=DIALOGUE)}>",
        '    <Label value="turn" background="#69c0ff"/>',
        "  </ParagraphLabels>",
        f"  <Paragraphs {paragraphs}/>",
        "  </View>",
        '  <View style="flex:2;min-width:0">',
        f"  <View {_attrs(visible_when='region-selected', when_tag_name=TURN)}>",
    ]
    for dim in taxonomy.dimensions:
        lines += _dimension(dim)
    note = _attrs(name=NOTE, to_name=DIALOGUE, editable=True, max_submissions=1, rows=2)
    lines += [
        "  </View>",
        "  </View>",
        "  </View>",
        "  <Relations>",
        f"    <Relation {_attrs(value=TRIGGER_RELATION)}/>",
        "  </Relations>",
        '  <Header value="Note on this clip" size="6"/>',
        f"  <TextArea {note}/>",
        "</View>",
    ]
    return "\n".join(lines)
