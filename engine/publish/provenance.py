"""What published files may say about the run they come from: no paths, no input names.

A run's manifest records where its inputs were on the server (absolute paths) and under
which names. Published files (exports, ``compare.json``) carry only what identifies a run
without revealing the server: the run id, dates, versions, parameters with every path
reduced to its base name, and each input as its base name and SHA-256.
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

_PATH_CHARS = ("/", "\\")


def public_value(value: Any) -> Any:
    r"""Return ``value`` with every path-like string reduced to its base name (recursively).

    Examples
    --------
    >>> public_value({"households": "/srv/p3ke/6105.csv", "resolution": 8})
    {'households': '6105.csv', 'resolution': 8}
    >>> public_value(["s3://bucket/parts/*.parquet", "C:\\data\\hh.csv"])
    ['*.parquet', 'hh.csv']
    """
    if isinstance(value, dict):
        return {str(k): public_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public_value(v) for v in value]
    if isinstance(value, str) and any(c in value for c in _PATH_CHARS):
        name = PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name
        return name or value.rstrip("/\\").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return value


def public_run_record(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return the publishable description of a run from its manifest.

    Parameters
    ----------
    manifest
        The run's ``manifest.json``.

    Returns
    -------
    dict
        ``run_id``, ``created``, ``engine_version``, ``parameters`` (paths as base names,
        no ``out``) and ``inputs`` (``{key: {"name", "sha256"}}``).
    """
    params = manifest.get("parameters")
    params = {k: v for k, v in params.items() if k != "out"} if isinstance(params, dict) else {}
    inputs: dict[str, Any] = {}
    raw = manifest.get("inputs")
    for key, rec in (raw.items() if isinstance(raw, dict) else ()):
        if isinstance(rec, dict):
            inputs[str(key)] = {"name": public_value(str(rec.get("path", ""))) or None,
                                "sha256": rec.get("sha256")}
    return {"run_id": manifest.get("run_id"), "created": manifest.get("created"),
            "engine_version": manifest.get("engine_version"),
            "parameters": public_value(params), "inputs": inputs}


__all__ = ["public_run_record", "public_value"]
