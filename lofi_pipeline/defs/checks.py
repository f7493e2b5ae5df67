"""Asset checks: invariants of the library that a person would otherwise find the hard way."""


import dagster as dg

from lofi_pipeline.defs.assets import song_embeddings, track_selection
from lofi_pipeline.defs.resources import LibraryResource


@dg.asset_check(asset=song_embeddings, description="Every song with a known prompt has an embedding.")
def every_prompted_song_has_embedding(library: LibraryResource) -> dg.AssetCheckResult:
    from lofi_pipeline.core.embedding import MODEL_NAME

    missing = library.library().df(
        "SELECT s.filename FROM songs s LEFT JOIN song_embeddings e ON e.song_id = s.song_id "
        "AND e.model = ? WHERE s.text_from_prompt AND e.song_id IS NULL", [MODEL_NAME])
    return dg.AssetCheckResult(passed=missing.empty, metadata={
        "missing": len(missing), "examples": dg.MetadataValue.json(missing.filename.head(10).tolist())})


@dg.asset_check(asset=song_embeddings, description="At most one embedding per song and model.")
def one_embedding_per_song_and_model(library: LibraryResource) -> dg.AssetCheckResult:
    dup = library.library().df(
        "SELECT song_id, model, count(*) AS n FROM song_embeddings GROUP BY 1, 2 HAVING count(*) > 1")
    return dg.AssetCheckResult(passed=dup.empty, metadata={"duplicates": len(dup)})


@dg.asset_check(asset=track_selection, description="No song is selected twice in a track "
                "(songs repeated on purpose because the library is short are allowed and flagged).")
def no_song_selected_twice(library: LibraryResource) -> dg.AssetCheckResult:
    dup = library.library().df(
        "SELECT track_number, song_id, count(*) AS n FROM selections WHERE NOT is_repeat "
        "GROUP BY 1, 2 HAVING count(*) > 1")
    return dg.AssetCheckResult(passed=dup.empty, metadata={"duplicates": len(dup)})


ALL_CHECKS = [every_prompted_song_has_embedding, one_embedding_per_song_and_model, no_song_selected_twice]
