"""The project's example models, generated locally (nothing comes from a model hub).

Model folder layout (the origin's master store; edges may hold a copy)::

    <models>/<name>/<version>/model.onnx     the ONNX graph (its SHA-256 is the digest)
    <models>/<name>/<version>/config.json    description, inputs/outputs, file list
    <models>/<name>/<version>/<other files>  artifacts served under /models/... too
    <models>/<name>/CURRENT                  optional: the version to serve; without it
                                             the highest version (numeric order) is served

Models:

* ``ranker``: a ranking MLP, ``features`` FP32 [-1, 32] → Dense(hidden) ReLU → Dense(hidden)
  ReLU → Dense(1) sigmoid → ``score`` FP32 [-1, 1]. Weights from a fixed seed, so a given
  (seed, hidden) always produces the same bytes and digest.
* ``embedder``: an item-embedding lookup, ``item_id`` INT64 [-1, 1] → ``embedding`` FP32
  [-1, 16], with its table also shipped as the artifact ``embeddings.npy``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RANKER_FEATURES = 32
EMBEDDER_ITEMS = 1000
EMBEDDER_DIM = 16
OPSET = 17
IR_VERSION = 9  # readable by every onnxruntime since 1.15


def _save(model: onnx.ModelProto, folder: Path, config: dict) -> Path:
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".model.onnx.tmp"
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(folder / "model.onnx")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder / "model.onnx"


def ranker_model(seed: int = 0, hidden: int = 64) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    sizes = [RANKER_FEATURES, hidden, hidden, 1]
    inits, nodes, x = [], [], "features"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"W{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"])]
        last = i == len(sizes) - 2
        out = "score" if last else f"h{i}"
        nodes.append(helper.make_node("Sigmoid" if last else "Relu", [f"z{i}"], [out]))
        x = out
    graph = helper.make_graph(
        nodes, "ranker",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", RANKER_FEATURES])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="geocdn.edge.modelgen")


def write_ranker(models_dir: Path, version: str = "1", seed: int = 0, hidden: int = 64) -> Path:
    config = {
        "name": "ranker", "version": version, "platform": "onnxruntime_onnx",
        "description": f"ranking MLP {RANKER_FEATURES}-{hidden}-{hidden}-1, seed {seed}",
        "files": ["model.onnx", "config.json"],
    }
    return _save(ranker_model(seed, hidden), Path(models_dir) / "ranker" / version, config)


def embedder_model(seed: int = 1) -> tuple[onnx.ModelProto, np.ndarray]:
    table = np.random.default_rng(seed).standard_normal(
        (EMBEDDER_ITEMS, EMBEDDER_DIM)).astype(np.float32)
    nodes = [
        helper.make_node("Squeeze", ["item_id", "axis1"], ["ids"]),
        helper.make_node("Gather", ["table", "ids"], ["embedding"], axis=0),
    ]
    graph = helper.make_graph(
        nodes, "embedder",
        [helper.make_tensor_value_info("item_id", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDER_DIM])],
        [numpy_helper.from_array(table, "table"),
         numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="geocdn.edge.modelgen")
    return model, table


def write_embedder(models_dir: Path, version: str = "1", seed: int = 1) -> Path:
    model, table = embedder_model(seed)
    folder = Path(models_dir) / "embedder" / version
    config = {
        "name": "embedder", "version": version, "platform": "onnxruntime_onnx",
        "description": f"item embedding table {EMBEDDER_ITEMS}x{EMBEDDER_DIM}, seed {seed}",
        "files": ["model.onnx", "config.json", "embeddings.npy"],
    }
    path = _save(model, folder, config)
    np.save(folder / "embeddings.npy", table)
    return path


def make_models(models_dir: Path, hidden: int = 64) -> list[Path]:
    """Write every example model (version 1) under `models_dir`; returns the model files."""
    return [write_ranker(models_dir, hidden=hidden), write_embedder(models_dir)]
