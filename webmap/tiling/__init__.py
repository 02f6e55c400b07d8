"""Tiling: the tile service, PNG rendering, MVT encoding, colour scales and the tile cache."""
