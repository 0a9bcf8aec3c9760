"""Other apps' models by their names: an Ollama blob by its name:tag wherever a model is named,
two revisions of one Hugging Face file told apart, and the folders a scan could not read
named (real trees laid out as each app lays them out, real GGUF files)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from kobold_gui.core.models.files import scan_folder
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.models.names import display_name, display_stem
from kobold_gui.core.models.roots import HUGGING_FACE, ScanRoot
from kobold_gui.core.models.scan import scan_models
from tests.core.test_model_scan import _ollama_manifest, build_apps
from tests.core.test_model_scan import readable_by_all as readable_by_all  # a fixture

OLLAMA_BLOB = Path(".ollama") / "models" / "blobs" / f"sha256-{'d' * 64}"


def test_an_ollama_blob_goes_by_its_name_and_tag(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "user"
    build_apps(home, tiny_model)
    blob = home / OLLAMA_BLOB
    assert display_name(blob) == "smollm2:135m, smollm2:latest"  # two tags, one blob
    assert display_stem(blob) == "smollm2:135m"  # the API's model id takes one
    info = read_gguf(blob)
    assert info.label == "smollm2:135m, smollm2:latest"
    assert info.summary()["file"] == "smollm2:135m, smollm2:latest"  # the metadata panel
    # any other file keeps its file name, and its stem for the API
    assert display_name(tiny_model) == tiny_model.name == read_gguf(tiny_model).label
    assert display_stem(tiny_model) == "tiny-llama"


def test_a_model_pulled_after_the_first_look_is_named(tmp_path: Path, tiny_model: Path) -> None:
    models = tmp_path / "ollama"
    (models / "blobs").mkdir(parents=True)
    first = models / "blobs" / f"sha256-{'1' * 64}"
    shutil.copy(tiny_model, first)
    manifests = models / "manifests" / "registry.ollama.ai"
    _ollama_manifest(manifests / "library" / "tiny" / "latest", f"sha256:{'1' * 64}")
    assert display_name(first) == "tiny:latest"  # the manifests are read and kept
    pulled = models / "blobs" / f"sha256-{'2' * 64}"
    shutil.copy(tiny_model, pulled)
    _ollama_manifest(manifests / "me" / "mine" / "q8", f"sha256:{'2' * 64}")
    assert display_name(pulled) == "me/mine:q8"  # unknown to the kept ones: read again
    orphan = models / "blobs" / f"sha256-{'3' * 64}"
    shutil.copy(tiny_model, orphan)
    assert display_name(orphan) == orphan.name  # no manifest names it


def _hub_repo(hub: Path, model: Path, snapshots: dict[str, str], refs: dict[str, str]) -> Path:
    """models--org--name with the given revision -> blob of its one file, and refs."""
    repo = hub / "models--org--Tiny-GGUF"
    for revision, blob in snapshots.items():
        if not (repo / "blobs" / blob).exists():
            (repo / "blobs").mkdir(parents=True, exist_ok=True)
            shutil.copy(model, repo / "blobs" / blob)
        snap = repo / "snapshots" / revision
        snap.mkdir(parents=True)
        (snap / "tiny-q8_0.gguf").symlink_to(Path("../..") / "blobs" / blob)
    for name, revision in refs.items():
        (repo / "refs" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / name).write_text(revision)
    return repo


def test_two_revisions_of_a_hub_file_have_two_labels(tmp_path: Path, tiny_model: Path) -> None:
    old, new, pr = "1" * 40, "abcdef0" + "2" * 33, "3" * 40
    hub = tmp_path / "hub"
    snapshots = {old: "b" * 64, new: "c" * 64, pr: "d" * 64}
    _hub_repo(hub, tiny_model, snapshots, {"main": new, "pr/7": pr})
    names = [m.name for m in scan_models([ScanRoot(HUGGING_FACE, hub, "hf")]).models]
    assert sorted(names) == [
        "org/Tiny-GGUF/tiny-q8_0.gguf @ 1111111",  # no ref points at it: its short hash
        "org/Tiny-GGUF/tiny-q8_0.gguf @ main",
        "org/Tiny-GGUF/tiny-q8_0.gguf @ pr/7",
    ]


def test_revisions_sharing_one_file_list_it_once_without_a_revision(
    tmp_path: Path, tiny_model: Path
) -> None:
    hub = tmp_path / "hub"
    _hub_repo(hub, tiny_model, {"1" * 40: "b" * 64, "2" * 40: "b" * 64}, {"main": "2" * 40})
    result = scan_models([ScanRoot(HUGGING_FACE, hub, "hf")])
    assert [m.name for m in result.models] == ["org/Tiny-GGUF/tiny-q8_0.gguf"]
    assert result.models[0].path.parent.name == "2" * 40  # the revision main points at


def _as_nobody(fn: object, *args: object) -> object:
    """fn(*args) run by user nobody when this is root (root reads any folder), its result
    through JSON."""
    assert callable(fn)
    if os.geteuid() != 0:
        return json.loads(json.dumps(fn(*args)))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(fn(*args)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data or b"null")


def _folder_scan(folder: Path) -> dict[str, list[str]]:
    scan = scan_folder(folder)
    return {"models": [p.name for p in scan.models], "skipped": list(scan.skipped)}


def test_a_models_folder_names_what_it_could_not_read(readable_by_all: Path) -> None:
    folder = readable_by_all / ".local" / "share" / "nomic.ai" / "GPT4All"
    locked = folder / "private"
    locked.mkdir()
    (locked / "secret.gguf").write_bytes(b"GGUF")
    locked.chmod(0o000)
    got = _as_nobody(_folder_scan, folder)
    assert isinstance(got, dict)
    assert "smollm2-135m.gguf" in got["models"] and "secret.gguf" not in got["models"]
    assert got["skipped"] == [f"{locked}: Permission denied"]
    gone = scan_folder(readable_by_all / "unplugged-disk")  # a saved folder no longer there
    assert gone.models == [] and gone.skipped == (
        f"{readable_by_all / 'unplugged-disk'}: No such file or directory",
    )
