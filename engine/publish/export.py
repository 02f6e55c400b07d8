"""Writers of privacy-safe layers for GIS tools: GeoJSON, GeoPackage, GeoParquet, FlatGeobuf, CSV.

Every writer takes a layer from :class:`~kantong.engine.publish.published.PublishedRun` (never the
run
directory itself), rounds coordinates to :data:`COORDINATE_DECIMALS` decimals (1e-6 degree,
about 0.1 m), orients exterior rings counter-clockwise, writes atomically and records
provenance (engine version, run id, parameters, date, ``min_households``, "contains no
household records") in the file's own metadata, or in a ``<file>.json`` sidecar for CSV.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import shapely

from kantong.engine import __version__
from kantong.engine.atomic import atomic_path, claim_file, write_json
from kantong.engine.build.sums import precision_of_manifest
from kantong.engine.constants import SITES_DIR, SYNTHETIC_LABEL, WGS84
from kantong.engine.errors import InputError, RunError, first_line
from kantong.engine.publish.provenance import public_run_record
from kantong.engine.publish.published import PublishedRun

logger = logging.getLogger(__name__)

#: Output format -> file suffix.
FORMATS: dict[str, str] = {"geojson": ".geojson", "gpkg": ".gpkg", "parquet": ".parquet",
                           "csv": ".csv", "fgb": ".fgb"}
_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg", ".parquet": "parquet",
             ".geoparquet": "parquet", ".csv": "csv", ".fgb": "fgb"}
#: Layers that can be exported.
LAYERS = ("cells", "pockets", "sites")
#: Decimal places of exported coordinates (1e-6 degree is about 0.11 m at the equator).
COORDINATE_DECIMALS = 6
#: Provenance statement carried by every export.
NO_HOUSEHOLD_RECORDS = ("contains no household records: aggregates of H3 cells only, cells with "
                        "fewer than min_households households withheld")


@dataclasses.dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_layer` wrote."""

    path: Path
    layer: str
    format: str
    rows_written: int
    #: Rows (cells or pockets) withheld by the privacy rules.
    rows_suppressed: int
    #: Count values set to null in written rows (sites below the threshold).
    values_withheld: int
    sidecar: Path | None = None


def format_from_path(path: str | Path) -> str:
    """Return the export format implied by a file name's suffix.

    Raises
    ------
    InputError
        If the suffix is not one of the known formats.
    """
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: cannot tell the format from the suffix; use --format "
                         f"({', '.join(FORMATS)})")
    return fmt


def check_format(path: str | Path, fmt: str) -> str:
    """Return ``fmt`` if the suffix of ``path`` does not name another export format.

    A suffix that names no format (``.txt``, none) is allowed with any ``fmt``.

    Raises
    ------
    InputError
        If ``fmt`` is unknown, or the suffix implies a different format (``x.geojson``
        with ``csv``).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    implied = _SUFFIXES.get(Path(path).suffix.lower())
    if implied is not None and implied != fmt:
        raise InputError(f"{path}: format {fmt} does not match the suffix "
                         f"{Path(path).suffix} ({implied}); use a {FORMATS[fmt]} file name")
    return fmt


def layer_frame(published: PublishedRun, layer: str, *, resolution: int | None = None,
                regency: str | None = None) -> tuple[gpd.GeoDataFrame, int, int]:
    """Return a published layer, ready to write, and its suppression counts.

    Parameters
    ----------
    published
        The privacy gate of the run.
    layer
        ``cells``, ``pockets`` or ``sites``.
    resolution
        H3 resolution of ``cells`` (default: the base resolution); not allowed otherwise.
    regency
        Keep only rows whose ``regency_code`` is this code.

    Returns
    -------
    tuple
        ``(frame, rows_suppressed, values_withheld)``; the frame has coordinates rounded
        and exterior rings counter-clockwise.
    """
    if layer not in LAYERS:
        raise InputError(f"unknown layer {layer!r} (choose from {', '.join(LAYERS)})")
    if resolution is not None and layer != "cells":
        raise InputError("--resolution applies to the cells layer only")
    values_withheld = 0
    if layer == "cells":
        frame = published.cells(resolution, regency=regency)
        suppressed = published.withheld(resolution, regency=regency)
    elif layer == "pockets":
        frame = published.pockets()
        suppressed = published.pockets_withheld(regency=regency)
    else:
        frame = published.sites()
        suppressed = 0
        counts = [c for c in ("new_extreme_households", "cumulative_extreme_households",
                              "covered_persons") if c in frame.columns]
    if regency is not None and layer != "cells":
        code = published.check_regency(regency)
        frame = frame[frame["regency_code"].astype("string") == code]
    if layer == "sites":
        values_withheld = int(frame[counts].isna().sum().sum()) if counts else 0
    return round_and_orient(frame), suppressed, values_withheld


def provenance(published: PublishedRun, *, layer: str, resolution: int | None = None,
               regency: str | None = None) -> dict[str, Any]:
    """Return the provenance record written into (or beside) every export."""
    manifest = published.manifest
    run = public_run_record(manifest)
    record: dict[str, Any] = {
        "engine": "kantong",
        "engine_version": __version__,
        "run_id": published.run_id,
        "run_engine_version": manifest.get("engine_version"),
        "run_created": manifest.get("created"),
        "exported": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "layer": layer,
        "resolution": (published.base_resolution if resolution is None else resolution)
        if layer == "cells" else None,
        "regency": regency,
        "min_households": published.min_households,
        "run_min_households": published.run_min_households,
        # base names and hashes only: no server path, no input location (issue 18)
        "parameters": run["parameters"],
        "inputs": run["inputs"],
        "crs": WGS84,
        "coordinate_decimals": COORDINATE_DECIMALS,
        "contains_household_records": False,
        "statement": NO_HOUSEHOLD_RECORDS,
        "privacy": "docs/privacy.md",
    }
    if manifest.get("synthetic"):
        record["synthetic"] = SYNTHETIC_LABEL
    record["household_location"] = precision_of_manifest(manifest)  # issue 19
    return json.loads(json.dumps(record, default=str))


def export_layer(published: PublishedRun, layer: str, path: str | Path, *,
                 fmt: str | None = None, resolution: int | None = None,
                 regency: str | None = None, wkt: bool = False) -> ExportSummary:
    """Write one published layer to ``path`` (atomically) in ``fmt``.

    Parameters
    ----------
    published
        The privacy gate of the run.
    layer
        ``cells``, ``pockets`` or ``sites``.
    path
        Output file.
    fmt
        One of :data:`FORMATS` (default: from the suffix of ``path``).
    resolution
        H3 resolution (cells only).
    regency
        Keep only this regency code.
    wkt
        CSV only: add the geometry as a ``wkt`` column.

    Returns
    -------
    ExportSummary

    Raises
    ------
    InputError
        Unknown format, or a format that contradicts the suffix of ``path``.
    RunError
        ``layer="sites"`` in a run where no sites were chosen (``kantong sites``).

    Examples
    --------
    >>> export_layer(PublishedRun("run"), "cells", "cells.geojson")  # doctest: +SKIP
    """
    fmt = check_format(path, format_from_path(path) if fmt is None else fmt)
    claim_file(path, command="export", recognise=lambda p: is_export_output(p, fmt),
               inputs=[published.run_dir])  # never a run's file, never a foreign file
    folder = published.run_dir / SITES_DIR
    if layer == "sites" and not (folder.is_dir() and any(folder.glob("sites_*.parquet"))):
        raise RunError(f"{published.run_dir}: no sites in this run; choose them first with "
                       "`kantong sites`")
    frame, suppressed, withheld = layer_frame(published, layer, resolution=resolution,
                                              regency=regency)
    meta = provenance(published, layer=layer, resolution=resolution, regency=regency)
    path = Path(path)
    sidecar = export_frame(frame, path, fmt=fmt, layer=layer, metadata=meta, wkt=wkt)
    logger.info("exported %d %s rows to %s (%d withheld)", len(frame), layer, path, suppressed)
    return ExportSummary(path=path, layer=layer, format=fmt, rows_written=len(frame),
                         rows_suppressed=suppressed, values_withheld=withheld, sidecar=sidecar)


_ID_COLUMN = {"cells": "h3", "pockets": "pocket_id"}


def export_frame(frame: gpd.GeoDataFrame, path: str | Path, *, fmt: str, layer: str,
                 metadata: dict[str, Any], wkt: bool = False) -> Path | None:
    """Write an already-published layer frame (from :func:`layer_frame`) in ``fmt``.

    Used by :func:`export_layer` and by the web map's downloads (which filter the frame
    further, e.g. to one pocket).

    Parameters
    ----------
    frame
        Rows of :func:`layer_frame`, possibly a subset of them.
    path
        Output file (written atomically).
    fmt
        One of :data:`FORMATS`.
    layer
        ``cells``, ``pockets`` or ``sites`` (layer name, feature ids, geometry type).
    metadata
        Provenance record (:func:`provenance`).
    wkt
        CSV only: add the geometry as a ``wkt`` column.

    Returns
    -------
    Path or None
        The CSV's JSON sidecar, or ``None`` for the other formats.

    Raises
    ------
    InputError
        If ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    path = Path(path)
    if fmt == "geojson":
        write_geojson(frame, path, metadata=metadata, id_column=_ID_COLUMN.get(layer))
    elif fmt in ("gpkg", "fgb"):
        _write_ogr(frame, path, fmt=fmt, layer=layer, metadata=metadata)
    elif fmt == "parquet":
        write_geoparquet(frame, path, metadata=metadata)
    else:
        return write_csv(frame, path, metadata=metadata, wkt=wkt)
    return None


def is_export_output(path: str | Path, fmt: str) -> bool:
    """Return whether an existing file is a previous ``kantong export`` output (its provenance).

    GeoJSON: the ``kantong`` member leads the file; GeoParquet: ``kantong`` schema
    metadata; GeoPackage/FlatGeobuf: the provenance in the dataset or layer metadata; CSV:
    the ``<file>.json`` sidecar. Anything else (or unreadable) is not.
    """
    p = Path(path)
    try:
        if fmt == "geojson":
            with open(p, "rb") as fh:
                return fh.read(64).startswith(b'{"type":"FeatureCollection","kantong":{')
        if fmt == "parquet":
            return b"kantong" in (pq.read_schema(p).metadata or {})
        if fmt == "csv":
            meta = json.loads(p.with_name(p.name + ".json").read_text(encoding="utf-8"))
            return isinstance(meta, dict) and meta.get("engine") == "kantong"
        info = pyogrio.read_info(p)
        return "kantong" in json.dumps({k: info.get(k) for k in (
            "dataset_metadata", "layer_metadata")}, default=str).lower()
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return False


def round_and_orient(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return a copy with coordinates on a 1e-6 degree grid and exterior rings counter-clockwise.

    Geometries stay valid (``shapely.set_precision`` keeps topology; anything invalid after
    rounding is repaired with ``make_valid``); ``lon``/``lat`` columns are rounded too.

    Parameters
    ----------
    frame
        A published layer in EPSG:4326.

    Returns
    -------
    geopandas.GeoDataFrame
    """
    out = frame.copy()
    geoms = out.geometry.to_numpy()
    grid = 10.0 ** -COORDINATE_DECIMALS
    geoms = shapely.set_precision(geoms, grid)
    geoms = shapely.transform(geoms, lambda xy: np.round(xy, COORDINATE_DECIMALS))
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if bad.any():
        geoms[bad] = shapely.orient_polygons(shapely.make_valid(geoms[bad]), exterior_cw=False)
    out = out.set_geometry(gpd.GeoSeries(geoms, index=out.index, crs=WGS84))
    for col in ("lon", "lat"):
        if col in out.columns:
            out[col] = out[col].astype("float64").round(COORDINATE_DECIMALS)
    return out


def _json_values(series: pd.Series) -> list[Any]:
    """Column values as plain JSON values (numbers stay numbers; NaN/NA become null)."""
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return [bool(v) for v in series.to_numpy()]
    if pd.api.types.is_float_dtype(series) and not isinstance(series.dtype, pd.ArrowDtype):
        values = series.to_numpy(dtype="float64")
        return [None if v != v else float(v) for v in values.tolist()]
    if pd.api.types.is_integer_dtype(series) and not series.isna().any():
        return [int(v) for v in series.to_numpy().tolist()]
    out = []
    for v in series.astype(object).tolist():
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            out.append(None)
        elif isinstance(v, np.generic):
            out.append(v.item())
        else:
            out.append(v)
    return out


def geojson_text(frame: gpd.GeoDataFrame, *, metadata: dict[str, Any] | None = None,
                 id_column: str | None = None) -> str:
    """Return an RFC 7946 FeatureCollection of ``frame`` as compact JSON text.

    WGS84 lon/lat, no ``crs`` member, provenance as the foreign member ``kantong``,
    properties as JSON numbers/strings/booleans/null (never NaN). ``frame`` should come
    from :func:`layer_frame` (coordinates already rounded and rings oriented). Geometries
    are encoded by GEOS in one vectorised call (``shapely.to_geojson``).

    Parameters
    ----------
    frame
        A layer in EPSG:4326.
    metadata
        Provenance record written as the top-level ``kantong`` member.
    id_column
        Column whose value becomes each feature's ``id``.

    Returns
    -------
    str
    """
    if frame.crs is None or frame.crs.to_epsg() != 4326:
        raise InputError("GeoJSON export needs a layer in EPSG:4326")
    props = frame.drop(columns=frame.geometry.name)
    columns = {c: _json_values(props[c]) for c in props.columns}
    names = list(columns)
    geoms = frame.geometry.to_numpy()
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    encoded = shapely.to_geojson(np.where(empty, None, geoms))
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
    ids = columns.get(id_column) if id_column is not None else None
    parts = []
    for i in range(len(frame)):
        head = '{"type":"Feature",'
        if ids is not None and ids[i] is not None:
            head += f'"id":{dumps(ids[i])},'
        geometry = "null" if empty[i] else encoded[i]
        properties = dumps({n: columns[n][i] for n in names})
        parts.append(f'{head}"geometry":{geometry},"properties":{properties}}}')
    member = f'"kantong":{dumps(metadata)},' if metadata is not None else ""
    return f'{{"type":"FeatureCollection",{member}"features":[{",".join(parts)}]}}'


def geojson_dict(frame: gpd.GeoDataFrame, *, metadata: dict[str, Any] | None = None,
                 id_column: str | None = None) -> dict[str, Any]:
    """Return :func:`geojson_text` parsed into a plain dict (for APIs and tests)."""
    return json.loads(geojson_text(frame, metadata=metadata, id_column=id_column))


def write_geojson(frame: gpd.GeoDataFrame, path: str | Path, *,
                  metadata: dict[str, Any] | None = None, id_column: str | None = None) -> Path:
    """Write ``frame`` as RFC 7946 GeoJSON (see :func:`geojson_text`) atomically."""
    text = geojson_text(frame, metadata=metadata, id_column=id_column)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _ogr_ready(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Give empty object columns a concrete type so OGR drivers can create the fields."""
    out = frame.copy()
    for col in out.columns:
        if col != out.geometry.name and out[col].dtype == object:
            out[col] = out[col].astype("string")
    return out


def _write_ogr(frame: gpd.GeoDataFrame, path: Path, *, fmt: str, layer: str,
               metadata: dict[str, Any]) -> Path:
    text = json.dumps(metadata, ensure_ascii=False)
    title = f"kantong {layer} (run {metadata['run_id']}, K={metadata['min_households']})"
    geometry_type = {"cells": "Polygon", "pockets": "MultiPolygon", "sites": "Point"}[layer]
    kwargs: dict[str, Any] = {"layer": layer, "geometry_type": geometry_type,
                              "promote_to_multi": layer == "pockets"}
    if fmt == "gpkg":
        # GeoPackage 1.2: readable by older GDAL/QGIS too (GDAL 3.6 warns on 1.4)
        kwargs.update(driver="GPKG", dataset_options={"VERSION": "1.2"},
                      layer_options={"IDENTIFIER": title, "DESCRIPTION": text},
                      dataset_metadata={"KANTONG_PROVENANCE": text},
                      layer_metadata={"KANTONG_PROVENANCE": text})
    else:
        kwargs.update(driver="FlatGeobuf", layer_options={"TITLE": title, "DESCRIPTION": text})
    with atomic_path(path) as tmp:
        try:
            pyogrio.write_dataframe(_ogr_ready(frame), tmp, **kwargs)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError,
                pyogrio.errors.FieldError, pyogrio.errors.GeometryError,
                RuntimeError) as exc:  # disk full, read-only folder, driver limits
            raise InputError(f"{path}: cannot write {fmt} ({first_line(exc)})") from None
    return path


def write_geoparquet(frame: gpd.GeoDataFrame, path: str | Path, *,
                     metadata: dict[str, Any]) -> Path:
    """Write GeoParquet (``geo`` metadata) with provenance as ``kantong`` schema metadata."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
        table = pq.read_table(tmp)
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[b"kantong"] = json.dumps(metadata, ensure_ascii=False).encode("utf-8")
        pq.write_table(table.replace_schema_metadata(schema_meta), tmp)
    return Path(path)


def write_csv(frame: gpd.GeoDataFrame, path: str | Path, *, metadata: dict[str, Any],
              wkt: bool = False) -> Path:
    """Write CSV (no geometry; ``lon``/``lat`` positions, optional ``wkt``) plus a JSON sidecar.

    Returns
    -------
    Path
        The sidecar ``<file>.json`` holding the provenance.
    """
    geom_name = frame.geometry.name
    table = pd.DataFrame(frame.drop(columns=geom_name))
    if "lon" not in table.columns and len(frame):
        rep = frame.geometry.representative_point()
        table["lon"] = rep.x.round(COORDINATE_DECIMALS).to_numpy()
        table["lat"] = rep.y.round(COORDINATE_DECIMALS).to_numpy()
    if wkt:
        table["wkt"] = shapely.to_wkt(frame.geometry.to_numpy(),
                                      rounding_precision=COORDINATE_DECIMALS)
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    write_json(sidecar, {**metadata, "columns": list(table.columns)})
    return sidecar
