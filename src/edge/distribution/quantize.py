"""The optional INT8 variant: onnxruntime dynamic quantization, and how close it stays.

Agreement is measured on deterministic sample inputs (several batches): the absolute
differences of the first output, and, because these models rank or classify, how
often INT8 keeps the decision: argmax agreement for multi-column outputs, rank
correlation (Spearman) and top-k overlap of the scores across a batch otherwise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic

from edge.distribution.samples import open_session, sample_inputs

TOP_K = 10


def quantize_int8(model_path: Path, out_path: Path) -> None:
    quantize_dynamic(str(model_path), str(out_path), weight_type=QuantType.QInt8)


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(np.float64)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom else 1.0


def agreement(fp32: bytes, int8: bytes, batches: int = 4, batch: int = 64) -> dict[str, Any]:
    """Compare the two models' first output on `batches` sample batches."""
    s32, s8 = open_session(fp32), open_session(int8)
    diffs, spearman, topk, argmax = [], [], [], []
    for seed in range(batches):
        feed = sample_inputs(s32, batch=batch, seed=seed)
        a = np.asarray(s32.run(None, feed)[0], dtype=np.float64)
        b = np.asarray(s8.run(None, feed)[0], dtype=np.float64)
        diffs.append(np.abs(a - b).ravel())
        if a.ndim >= 2 and a.shape[-1] > 1:
            argmax.append(float((a.argmax(-1) == b.argmax(-1)).mean()))
        else:
            sa, sb = a.reshape(a.shape[0], -1)[:, 0], b.reshape(b.shape[0], -1)[:, 0]
            spearman.append(_spearman(sa, sb))
            k = min(TOP_K, len(sa))
            top_a, top_b = set(np.argsort(-sa)[:k]), set(np.argsort(-sb)[:k])
            topk.append(len(top_a & top_b) / k)
    d = np.concatenate(diffs)
    out: dict[str, Any] = {
        "samples": batches * batch,
        "max_abs_diff": float(d.max()),
        "mean_abs_diff": float(d.mean()),
    }
    if argmax:
        out["argmax_agreement"] = float(np.mean(argmax))
    if spearman:
        out["spearman"] = float(np.mean(spearman))
        out[f"top{TOP_K}_overlap"] = float(np.mean(topk))
    return out


def make_int8(model_path: Path) -> tuple[bytes, dict[str, Any]]:
    """The INT8 model's bytes and its quantization report (sizes, agreement)."""
    with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
        out = Path(tmp) / "model.int8.onnx"
        quantize_int8(model_path, out)
        int8 = out.read_bytes()
    fp32 = model_path.read_bytes()
    report = {
        "method": "onnxruntime.quantization.quantize_dynamic(QInt8)",
        "fp32_size": len(fp32),
        "size": len(int8),
        "ratio": round(len(int8) / len(fp32), 4),
        "agreement": agreement(fp32, int8),
    }
    return int8, report
