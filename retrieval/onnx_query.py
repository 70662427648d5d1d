"""The query side of a mean-pooled sentence-transformers model, run by ONNX Runtime.

A query is one short text, encoded while a user waits: there torch's per-call overhead
dominates (MiniLM-L6, 2 cores: 7.3 ms a query in torch, 3.0 ms in ONNX Runtime, same vector
to cos 1 - 4e-8). With int8 weights (dynamic quantization, per channel) the transformer's
weights shrink from 42 to 11 MB, which matters more than arithmetic for one short text
between vector searches that evict them from cache: 2.1-2.5 ms against 4.7 ms in a hybrid
query, at cosine 0.994 (mean; min 0.990) to torch's vector on SciFact queries.

Passages are still encoded by sentence-transformers, in batches, where torch is as fast.
Short sentences scored at answer time are not: `encode_batch` runs them here, a few dozen per
call (see DenseEncoder.encode_sentences).
The model is exported once, from the weights already on disk, into a cache directory; an
exported file whose vectors stray from torch's is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# What the exported graph must reproduce: torch's query vector, to this cosine, on PROBES.
MIN_AGREEMENT = 0.99999
# int8 weights move a vector by cosine 0.006 on average (0.010 at worst on 300 SciFact queries).
MIN_AGREEMENT_INT8 = 0.98
PROBES = ("What causes vitamin D deficiency?", "Who directed the film that won Best Picture in 1994?")
# Texts per run in `encode_batch` (bench/sentence_encoding.py, 27 answer-time sentences, 2 cores):
# fp32 costs 191 ms CPU in runs of 4, 227 one at a time, 278 in runs of 16 (padding and attention
# grow faster than the per-run overhead shrinks). int8 runs one at a time: its activations are
# quantized with one scale per run, so a batch's texts move each other's vectors (cosine 0.96 to
# the same text alone), and runs of 2-8 saved no CPU (71-88 ms against 75).
BATCH = 4
BATCH_INT8 = 1
# Bump when the export (opset, inputs, graph) changes: older cached files are then ignored.
EXPORT_FORMAT = 1


class OnnxQueryEncoder:
    """Tokenizer + exported transformer + mean pooling + L2 norm, for one text or a batch."""

    def __init__(
        self, tokenizer: Any, model_file: Path, max_length: int, threads: int, batch: int = BATCH
    ) -> None:
        import onnxruntime as ort

        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads would otherwise spin after each query, taking a core from the
        # vector store's search that runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._batch = batch

    def encode(self, text: str) -> np.ndarray:
        vector: np.ndarray = self._run([text])[0]
        return vector

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of `texts`, one row each, in input order. Texts run shortest first, `batch`
        at a time, so each run pads only to the longest of texts of about its own length."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: np.ndarray | None = None
        for start in range(0, len(order), self._batch):
            batch = order[start : start + self._batch]
            vectors = self._run([texts[i] for i in batch])
            if rows is None:
                rows = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            rows[batch] = vectors
        return rows if rows is not None else np.empty((0, 0), dtype=np.float32)

    def _run(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(
            texts, return_tensors="np", padding=True, truncation=True, max_length=self._max_length
        )
        feed = {name: np.asarray(tokens[name], dtype=np.int64) for name in self._inputs}
        hidden = self._session.run(None, feed)[0]
        # Padding positions are masked out of the mean, as sentence-transformers does.
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norms, dtype=np.float32)


def load_or_export(
    tokenizer: Any,
    transformer: Any,
    model_path: str,
    max_length: int,
    cache_dir: Path,
    threads: int,
    reference: Callable[[str], list[float]],
    int8: bool = False,
) -> OnnxQueryEncoder | None:
    """The ONNX query encoder for `model_path`, exported into `cache_dir` on first use.

    Returns None (queries stay on torch) when ONNX Runtime is missing, the export fails, or
    the exported graph's vectors stray from `reference` (torch's query encoder): a wrong
    query vector would silently degrade every search, a slower one only costs milliseconds.
    """
    suffix = "-int8" if int8 else ""
    model_file = cache_dir / f"{Path(model_path).name}-{_fingerprint(model_path)}{suffix}.onnx"
    floor = MIN_AGREEMENT_INT8 if int8 else MIN_AGREEMENT
    try:
        encoder = _open_or_build(tokenizer, transformer, model_file, int8, max_length, threads)
        worst = min(float(encoder.encode(p) @ np.asarray(reference(p), dtype=np.float32)) for p in PROBES)
    except Exception as exc:  # an optional speed-up: any failure falls back to torch, said once
        log.warning("ONNX query encoder unavailable, queries are encoded by torch: %s", exc)
        return None
    if worst < floor:
        log.warning(
            "ONNX query encoder at %s disagrees with torch (cosine %.6f < %s); queries are encoded by torch",
            model_file, worst, floor,
        )  # fmt: skip
        return None
    return encoder


def _open_or_build(
    tokenizer: Any, transformer: Any, model_file: Path, int8: bool, max_length: int, threads: int
) -> OnnxQueryEncoder:
    """Open the cached file; a missing or unreadable one (a disk filled mid-write by an older
    Keel, a file edited by hand) is built again: it is derived from the weights alone."""
    batch = BATCH_INT8 if int8 else BATCH
    if model_file.exists():
        try:
            return OnnxQueryEncoder(tokenizer, model_file, max_length, threads, batch)
        except Exception as exc:
            log.warning("cached query encoder %s is unreadable (%s); building it again", model_file, exc)
    if int8:
        full_precision = model_file.with_name(model_file.name.replace("-int8.onnx", ".onnx"))
        if not full_precision.exists():
            _export(transformer, tokenizer, full_precision)
        _quantize(full_precision, model_file)
    else:
        _export(transformer, tokenizer, model_file)
    return OnnxQueryEncoder(tokenizer, model_file, max_length, threads, batch)


def _quantize(full_precision: Path, model_file: Path) -> None:
    """int8 weights for every MatMul, one scale per output channel (per tensor loses more:
    cosine 0.958 at worst on short probes); activations are quantized on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = model_file.with_name(f"{model_file.name}.{os.getpid()}.partial")
    # The quantizer logs a suggestion to pre-process the model at WARNING on the root logger;
    # only that line is dropped, so other threads' warnings still show meanwhile.
    root = logging.getLogger()
    advice = _DropMessage("Please consider to run pre-processing")
    root.addFilter(advice)
    try:
        quantize_dynamic(
            full_precision,
            partial,
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
        )
        partial.replace(model_file)
    finally:
        root.removeFilter(advice)
        partial.unlink(missing_ok=True)
    log.info("quantized the query encoder to %s", model_file)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._prefix)


def _fingerprint(model_path: str) -> str:
    """Changes when the weights, the model's config, torch or the export format change."""
    import torch

    digest = hashlib.sha256(f"{EXPORT_FORMAT}/{torch.__version__}".encode())
    root = Path(model_path)
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        file = root / name
        if file.exists():
            stat = file.stat()
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _export(transformer: Any, tokenizer: Any, model_file: Path) -> None:
    """Trace the transformer to ONNX with dynamic batch and length; atomic, so another process
    starting at the same moment sees either no file or a whole one."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = tokenizer(["an example query"], return_tensors="pt")
    model_file.parent.mkdir(parents=True, exist_ok=True)
    partial = model_file.with_name(f"{model_file.name}.{os.getpid()}.partial")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    try:
        # The tracer warns about every Python branch it freezes; the agreement check that
        # follows the export is what tells whether the graph is right.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState(transformer).eval(),
                tuple(sample[name] for name in INPUTS),
                str(partial),
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                # The TorchScript exporter: the dynamo one needs onnxscript, a package
                # Keel has no other use for.
                dynamo=False,
            )
        partial.replace(model_file)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported the query encoder to %s", model_file)
