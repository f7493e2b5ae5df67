"""Asset checks: invariants of the library that a person would otherwise find the hard way."""


import dagster as dg

from lofi_pipeline.defs.assets import mix_plan, song_embeddings
from lofi_pipeline.defs.resources import LibraryResource


@dg.asset_check(asset=song_embeddings, description="Every song with a known prompt has an embedding.")
def every_prompted_song_has_embedding(library: LibraryResource) -> dg.AssetCheckResult:
    from lofi_pipeline.core.embedding import MODEL_NAME

    missing = library.library().songs_missing_embeddings(MODEL_NAME)
    return dg.AssetCheckResult(passed=not missing, metadata={
        "missing": len(missing), "examples": dg.MetadataValue.json(missing[:10])})


@dg.asset_check(asset=song_embeddings, description="At most one embedding per song and model.")
def one_embedding_per_song_and_model(library: LibraryResource) -> dg.AssetCheckResult:
    dup = library.library().duplicate_embeddings()
    return dg.AssetCheckResult(passed=dup == 0, metadata={"duplicates": dup})


@dg.asset_check(asset=mix_plan, description="No song starts twice as a first play in a plan "
                "(songs repeated on purpose because an arc is short are marked as repeats).")
def no_song_planned_twice(library: LibraryResource) -> dg.AssetCheckResult:
    dup = library.library().duplicate_first_plays()
    return dg.AssetCheckResult(passed=dup == 0, metadata={"duplicates": dup})


ALL_CHECKS = [every_prompted_song_has_embedding, one_embedding_per_song_and_model, no_song_planned_twice]
