"""Readable run names (`brisk-falcon-12`) for runs started without one, derived from the run
id so that every process that resumes a run names it alike."""

from __future__ import annotations

import hashlib

ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "fancy", "fierce",
    "gentle", "glad", "golden", "grand", "happy", "hardy", "humble", "jolly", "keen", "kind",
    "lively", "lucky", "mellow", "merry", "mighty", "misty", "noble", "proud", "quick", "quiet",
    "rapid", "royal", "rustic", "shiny", "silent", "silver", "sleek", "smooth", "snowy", "solid",
    "steady", "stellar", "sunny", "swift", "tidy", "upbeat", "vivid", "warm", "wild", "wise",
)  # fmt: skip
NOUNS = (
    "badger", "bear", "beaver", "bison", "cedar", "comet", "condor", "coral", "crane", "delta",
    "dune", "eagle", "falcon", "fern", "finch", "fjord", "fox", "glacier", "harbor", "hawk",
    "heron", "island", "lake", "lark", "lynx", "maple", "meadow", "moon", "moose", "oak",
    "orca", "otter", "owl", "panda", "pine", "planet", "puma", "raven", "reef", "river",
    "robin", "sparrow", "spruce", "star", "stream", "summit", "tiger", "valley", "willow", "wolf",
)  # fmt: skip


def run_name(run_id: str) -> str:
    """An adjective, a noun and a number from 1 to 99, chosen by the run id's hash."""
    digest = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")
    adjective = ADJECTIVES[digest % len(ADJECTIVES)]
    noun = NOUNS[(digest // len(ADJECTIVES)) % len(NOUNS)]
    number = (digest // (len(ADJECTIVES) * len(NOUNS))) % 99 + 1
    return f"{adjective}-{noun}-{number}"
