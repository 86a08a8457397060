"""What run media may be and where each is kept among a run's files: shared by the client,
which encodes them, and the store, which records them."""

from __future__ import annotations

from registrum import validation as v
from registrum.errors import InvalidArgument

# kind -> format -> (file suffix, media type)
FORMATS: dict[str, dict[str, tuple[str, str]]] = {
    "image": {"png": (".png", "image/png")},
    "figure": {
        "png": (".png", "image/png"),
        "plotly": (".plotly.json", "application/vnd.plotly.v1+json"),
    },
    "table": {"json": (".table.json", "application/json")},
    "text": {"txt": (".txt", "text/plain; charset=utf-8")},
}
_BY_SUFFIX = sorted(
    {suffix: kind for formats in FORMATS.values() for suffix, kind in formats.values()}.items(),
    key=lambda item: -len(item[0]),  # the longest suffix first: .table.json before .json
)


def media_path(key: str, step: int, kind: str, format: str) -> str:
    """Where the media of `key` at `step` lives among the run's files: media/KEY/STEP.EXT.
    `InvalidArgument` for a kind, format or key that cannot be stored."""
    if kind not in FORMATS:
        raise InvalidArgument(f"media kind {kind!r} is not one of {', '.join(FORMATS)}")
    if format not in FORMATS[kind]:
        raise InvalidArgument(f"a {kind} is stored as {' or '.join(FORMATS[kind])}, not {format!r}")
    try:
        return v.artifact_path(f"media/{key}/{step}{FORMATS[kind][format][0]}")
    except InvalidArgument:
        raise InvalidArgument(
            f"media key {key!r} must be a path of names: no empty, '.' or '..' parts, no '\\'"
        ) from None


def media_type(path: str) -> str:
    """The media type of a media file, by its suffix."""
    for suffix, kind in _BY_SUFFIX:
        if path.endswith(suffix):
            return kind
    return "application/octet-stream"
