"""The origin's model store: publishing, versions, pointer history, variants, safety."""

from __future__ import annotations

import json

import pytest

from edge.distribution import transfer
from edge.distribution.blobs import sha256_file
from edge.distribution.errors import Conflict, InvalidName, NotFound
from edge.distribution.store import InvalidModel, ModelStore


def test_publish_activate_rollback(tmp_path, model_files):
    store = ModelStore(tmp_path)
    m1, created = store.publish(model_files.v1, "ranker", "1")
    assert created and m1.digest == sha256_file(model_files.v1)
    assert store.blobs.path(m1.digest).read_bytes() == model_files.v1.read_bytes()
    assert store.pointer("ranker").current is None
    store.activate("ranker", "1")
    store.publish(model_files.last_layer, "ranker", "2")
    ptr = store.activate("ranker", "2")
    assert (ptr.current, ptr.history) == ("2", ["1"])
    ptr = store.rollback("ranker")
    assert (ptr.current, ptr.history) == ("1", [])
    with pytest.raises(Conflict):
        store.rollback("ranker")
    summary = store.summary()["ranker"]
    assert summary["current"] == "1" and set(summary["versions"]) == {"1", "2"}
    # the pointer on disk is complete JSON (written atomically)
    on_disk = json.loads((tmp_path / "models" / "ranker" / "pointer.json").read_text())
    assert on_disk["current"] == "1"


def test_versions_are_immutable(tmp_path, model_files):
    store = ModelStore(tmp_path)
    store.publish(model_files.v1, "ranker", "1")
    _, created = store.publish(model_files.v1, "ranker", "1")
    assert not created
    with pytest.raises(Conflict):
        store.publish(model_files.finetune, "ranker", "1")
    assert store.manifest("ranker", "1").digest == sha256_file(model_files.v1)


def test_last_layer_update_ships_as_small_delta(tmp_path, model_files):
    store = ModelStore(tmp_path)
    store.publish(model_files.v1, "ranker", "1")
    store.activate("ranker", "1")
    m2, _ = store.publish(model_files.last_layer, "ranker", "2")
    entry = m2.files["model"]
    assert [d.base_version for d in entry.deltas] == ["1"]
    delta = entry.deltas[0]
    full_cost = min(entry.size, entry.zstd.size if entry.zstd else entry.size)
    assert delta.size < transfer.DELTA_RATIO * full_cost
    # the patch really rebuilds version 2 from version 1
    step = transfer.Step("delta", delta.digest, delta.size, delta.method, delta.base_digest)
    rebuilt = transfer.rebuild(step, store.blobs.read(delta.digest), entry,
                               model_files.v1.read_bytes())
    assert rebuilt == model_files.last_layer.read_bytes()


def test_unrelated_model_gets_no_delta(tmp_path, model_files):
    from edge.modelgen import write_ranker

    other = write_ranker(tmp_path / "other", "9", seed=7)
    store = ModelStore(tmp_path / "s")
    store.publish(model_files.v1, "ranker", "1")
    store.activate("ranker", "1")
    m, _ = store.publish(other, "ranker", "9")
    assert m.files["model"].deltas == ()


def test_int8_variant_reports_size_and_agreement(tmp_path, model_files):
    store = ModelStore(tmp_path)
    m, _ = store.publish(model_files.v1, "ranker", "1", int8=True)
    q = m.quantization
    assert q["size"] == m.files["int8"].size < 0.5 * m.files["model"].size
    assert q["agreement"]["spearman"] > 0.95
    assert q["agreement"]["max_abs_diff"] < 0.1


@pytest.mark.parametrize("name", ["../etc", "/abs", "a/b", "..", ".hidden", "", "x" * 200,
                                  "a..b", "név"])
def test_names_cannot_escape_the_store(tmp_path, model_files, name):
    store = ModelStore(tmp_path / "store")
    with pytest.raises(InvalidName):
        store.publish(model_files.v1, name, "1")
    with pytest.raises(InvalidName):
        store.publish(model_files.v1, "ranker", name)
    assert not any((tmp_path / "store" / "models").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_bad_model_file_is_refused_and_changes_nothing(tmp_path, model_files):
    store = ModelStore(tmp_path)
    store.publish(model_files.v1, "ranker", "1")
    store.activate("ranker", "1")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InvalidModel):
        store.publish(junk, "ranker", "2")
    with pytest.raises(NotFound):
        store.manifest("ranker", "2")
    assert store.versions("ranker") == ["1"] and store.pointer("ranker").current == "1"
