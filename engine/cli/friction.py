"""``kantong friction``: build a friction surface from roads, rivers, land cover and a DEM."""

from __future__ import annotations

import time
from pathlib import Path

import click

_FILE = click.Path(dir_okay=False, path_type=Path)
_RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".asc"}
#: Margin (degrees, about 1 km) around the input layers when they set the extent.
_LAYER_MARGIN_DEG = 0.01


def _bounds(ctx: click.Context, param: click.Parameter,
            value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not (parts[0] < parts[2] and parts[1] < parts[3]):
        raise click.BadParameter(f"expected WEST,SOUTH,EAST,NORTH in degrees, got {value!r}")
    return parts


def _read_vector(path: Path | None, what: str):  # noqa: ANN202 - GeoDataFrame or None
    if path is None:
        return None
    from kantong.engine.inputs.tables import read_vector_layer

    return read_vector_layer(path, what=what)


def _extent(bounds, province, landcover, layers) -> tuple[float, float, float, float]:  # noqa: ANN001
    """Return the study extent in EPSG:4326 from the flags or the inputs."""
    from kantong.engine.errors import InputError

    if bounds is not None:
        return bounds
    if province is not None:
        from kantong.engine.inputs.boundaries import check_province, province_polygon

        west, south, east, north = province_polygon(check_province(province)).total_bounds
        return float(west), float(south), float(east), float(north)
    if isinstance(landcover, Path):
        import rasterio
        import rasterio.warp

        with rasterio.open(landcover) as src:
            if src.crs is None:
                raise InputError(f"{landcover}: land-cover raster has no CRS")
            return tuple(rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds))
    frames = [g.to_crs("EPSG:4326") for g in layers if g is not None and not g.empty]
    if not frames:
        raise InputError("give --bounds or --province, or at least one input layer")
    boxes = [f.total_bounds for f in frames]
    pad = _LAYER_MARGIN_DEG  # a lone straight road still gets an area around it
    return (float(min(b[0] for b in boxes)) - pad, float(min(b[1] for b in boxes)) - pad,
            float(max(b[2] for b in boxes)) + pad, float(max(b[3] for b in boxes)) + pad)


@click.command("friction")
@click.option("--out", required=True, type=_FILE, help="Output GeoTIFF (minutes per metre).")
@click.option("--roads", type=_FILE, default=None, help="Road lines with a class column.")
@click.option("--road-class", default="class", show_default=True,
              help="Column of --roads holding the road class (e.g. `highway` for OSM).")
@click.option("--rivers", type=_FILE, default=None,
              help="River lines and water polygons (lakes). Lines are navigable unless "
                   "--navigable says otherwise; polygons are barriers unless marked navigable.")
@click.option("--navigable", default="navigable", show_default=True,
              help="Optional true/false column of --rivers marking navigable water.")
@click.option("--landcover", type=_FILE, default=None,
              help="Land-cover raster (class codes, e.g. ESA WorldCover) or polygons.")
@click.option("--landcover-class", default="class", show_default=True,
              help="Class column of land-cover polygons.")
@click.option("--dem", type=_FILE, default=None,
              help="Elevation raster (metres, any CRS: warped): Tobler slope correction of "
                   "walking speeds.")
@click.option("--speeds", type=_FILE, default=None,
              help="Speed table (.toml or .csv; docs/friction.md) [default: the documented "
                   "Indonesian defaults].")
@click.option("--mode", type=click.Choice(["walking", "motorised", "mixed"]), default="mixed",
              show_default=True,
              help="walking: on foot only; motorised: vehicles on roads, walking off-road, "
                   "water a barrier except at road crossings; mixed: motorised plus boats on "
                   "navigable rivers.")
@click.option("--resolution", type=click.FloatRange(min=1.0, max=100_000.0), default=100.0,
              show_default=True, help="Pixel size in metres.")
@click.option("--crs", default=None,
              help="Output CRS (e.g. EPSG:32749 or EPSG:4326) [default: the UTM zone of the "
                   "extent's centre].")
@click.option("--bounds", callback=_bounds, default=None, metavar="W,S,E,N",
              help="Extent in degrees [default: --province, else the land-cover raster, else "
                   "the union of the input layers].")
@click.option("--province", default=None,
              help="BPS province code (61-65): its bounding box is the extent.")
def command(out: Path, roads: Path | None, road_class: str, rivers: Path | None,
            navigable: str, landcover: Path | None, landcover_class: str, dem: Path | None,
            speeds: Path | None, mode: str, resolution: float, crs: str | None,
            bounds: tuple[float, ...] | None, province: str | None) -> None:
    """Build a friction surface (minutes per metre) for least-cost travel times.

    Roads (speed per class and mode), rivers (boats where navigable, a barrier on foot
    except at road crossings), off-road walking by land cover and an optional Tobler slope
    correction are merged on one grid, like AccessMod's merged land cover. The output
    records its inputs and speed table in its tags; pass it to `kantong build --friction`.
    """
    import pyproj

    from kantong.engine.build.friction import build_friction, target_grid, write_friction
    from kantong.engine.build.speeds import read_speed_table
    from kantong.engine.errors import CRSError, InputError

    t0 = time.perf_counter()
    from kantong.engine.atomic import claim_file
    from kantong.engine.build.friction import is_friction_output

    claim_file(out, command="friction", recognise=is_friction_output,
               inputs=[roads, rivers, landcover, dem, speeds])
    if not any((roads, rivers, landcover, dem)):
        raise InputError("give at least one of --roads, --rivers, --landcover, --dem")
    for path, what in ((landcover, "land-cover"), (dem, "DEM")):
        if path is not None and not path.exists():
            raise InputError(f"{path}: {what} file not found")
    if crs is not None:
        try:
            pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError:
            raise CRSError(f"unknown CRS {crs!r}") from None
    table = read_speed_table(speeds)
    roads_gdf = _read_vector(roads, "roads")
    rivers_gdf = _read_vector(rivers, "rivers")
    lc: str | object | None = None
    if landcover is not None:
        lc = str(landcover) if landcover.suffix.lower() in _RASTER_SUFFIXES else \
            _read_vector(landcover, "land-cover polygons")
    extent = _extent(bounds, province, landcover if isinstance(lc, str) else None,
                     [roads_gdf, rivers_gdf, lc if not isinstance(lc, str) else None])
    grid = target_grid(extent, resolution=resolution, crs=crs)
    friction, info = build_friction(grid, table=table, mode=mode, roads=roads_gdf,
                                    road_class=road_class, rivers=rivers_gdf,
                                    navigable=navigable, landcover=lc,
                                    landcover_class=landcover_class,
                                    dem=str(dem) if dem else None)
    from kantong.engine import __version__

    info["inputs"] = {k: (str(v) if v is not None else None) for k, v in
                      {"roads": roads, "rivers": rivers, "landcover": landcover, "dem": dem,
                       "speeds": speeds}.items()}
    info["generator"] = f"kantong friction {__version__}"
    write_friction(str(out), friction, grid, info)
    click.echo(f"wrote {out}: {grid.shape[1]} x {grid.shape[0]} px at {resolution:g} m in "
               f"{grid.crs.to_string()}, mode {mode}, {info['pixels']['road']:,} road / "
               f"{info['pixels']['navigable_river']:,} navigable-river pixels "
               f"({time.perf_counter() - t0:.1f} s)")
