"""Generated label configs and taxonomy changes against the real Label Studio server."""

from __future__ import annotations

import copy

import pytest
import yaml
from label_studio_sdk import LabelStudio

from annotate.config import Settings
from annotate.labelstudio import connect, ensure_project, iter_tasks
from schemas.codec import encode_annotation, label_usage
from schemas.errors import TaxonomyError
from schemas.label_config import label_config
from schemas.taxonomy import default_taxonomy_path, load_taxonomy, taxonomy_from_dict
from tests.payloads import dialogue

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("extension", [False, True])
@pytest.mark.parametrize("video", [False, True])
def test_server_accepts_every_generated_config(
    label_studio: Settings, extension: bool, video: bool
) -> None:
    client = connect(label_studio)
    config = label_config(load_taxonomy(extension=extension), video=video)
    project = client.projects.create(
        title=f"variant video={video} ext={extension}", label_config=config
    )
    try:
        assert client.projects.get(id=project.id).label_config == config
    finally:
        client.projects.delete(id=project.id)


def _renamed(extension: bool = False) -> object:
    raw = copy.deepcopy(yaml.safe_load(default_taxonomy_path().read_text()))
    raw["version"] = "2.0.0"
    for lab in raw["dimensions"][0]["labels"]:
        if lab["value"] == "joy":
            lab["value"] = "happiness"
    for table in raw["mappings"].values():
        table["happiness"] = table.pop("joy")
    return taxonomy_from_dict(raw, extension=extension)


def test_taxonomy_change_is_refused_then_migrated(label_studio: Settings) -> None:
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={"project_title": "Taxonomy change"}
            )
        }
    )
    client: LabelStudio = connect(settings)
    old = load_taxonomy()
    project = ensure_project(client, settings, old)
    lines = dialogue(2)
    data = {
        "dialogue": lines,
        "audio": "/data/local-files/?d=x/none.wav",
        "title": "t",
        "prompt": "p",
        "context": "",
        "clip_id": "x-c000",
        "session_id": "x",
    }
    client.projects.import_tasks(id=project.id, request=[{"data": data}])
    (task,) = list(iter_tasks(client, project.id))
    result = encode_annotation(lines, {0: {"emotion": "joy"}, 1: {"emotion": "anger"}}, old)
    client.annotations.create(id=task.id, result=result)

    new = _renamed()
    with pytest.raises(TaxonomyError, match="emotion label 'joy' is used by 1 results"):
        ensure_project(client, settings, new)
    # refused: nothing changed on the server
    assert client.projects.get(id=project.id).label_config == label_config(old)

    updated = ensure_project(client, settings, new, {"emotion": {"joy": "happiness"}})
    assert updated.id == project.id
    assert client.projects.get(id=project.id).label_config == label_config(new)
    (task,) = list(iter_tasks(client, project.id))
    usage = label_usage(a["result"] for a in task.annotations)
    assert usage[("emotion", "happiness")] == 1
    assert usage[("emotion", "joy")] == 0
    assert usage[("emotion", "anger")] == 1
    # adding labels (the improv extension) needs no migration
    wider = _renamed(extension=True)
    ensure_project(client, settings, wider)
    assert client.projects.get(id=project.id).label_config == label_config(wider)
