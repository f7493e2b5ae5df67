"""Track partitions: one per track number, added when a track is imported or seen on disk."""

import dagster as dg

TRACKS_PARTITION = "tracks"
track_partitions = dg.DynamicPartitionsDefinition(name=TRACKS_PARTITION)


def ensure_track_partition(instance: dg.DagsterInstance, track_number: int) -> str:
    key = str(int(track_number))
    if not instance.has_dynamic_partition(TRACKS_PARTITION, key):
        instance.add_dynamic_partitions(TRACKS_PARTITION, [key])
    return key
