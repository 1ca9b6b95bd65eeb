"""Turn world-atlas's `land-110m.json` (TopoJSON) into the dashboard's land outline.

The source is Natural Earth's 1:110m land, public domain, as redistributed by the npm
package `world-atlas` (ISC licence, Mike Bostock). Run once, by hand:

    npm install --prefix /tmp/wa world-atlas
    python src/geodns/dashboard/tools/land_from_world_atlas.py \
        /tmp/wa/node_modules/world-atlas/land-110m.json src/geodns/dashboard/static/land.json

The output is one SVG path in an equirectangular frame (x = lon + 180, y = 90 - lat,
so the map's viewBox is 0 0 360 180), rounded to a tenth of a degree, which is what a
dashboard-sized world map needs and keeps the committed asset small.
"""

from __future__ import annotations

import json
import sys


def decode_arcs(topology: dict) -> list[list[tuple[float, float]]]:
    """Absolute lon/lat points of every arc (arcs are delta-encoded and quantized)."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


Point = tuple[float, float]


def ring_points(ring: list[int], arcs: list[list[Point]]) -> list[Point]:
    points: list[Point] = []
    for index in ring:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)
    return points


def ring_path(points: list[tuple[float, float]]) -> str:
    out: list[str] = []
    last = None
    for lon, lat in points:
        xy = (round(lon + 180, 1), round(90 - lat, 1))
        if xy != last:
            out.append(f"{xy[0]:g} {xy[1]:g}")
            last = xy
    return "M" + "L".join(out) + "Z" if len(out) >= 4 else ""


def main(src: str, dst: str) -> None:
    topology = json.load(open(src))
    arcs = decode_arcs(topology)
    parts = []
    for geometry in topology["objects"]["land"]["geometries"]:
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for polygon in polygons:
            for ring in polygon:
                parts.append(ring_path(ring_points(ring, arcs)))
    asset = {
        "source": "Natural Earth 1:110m land (public domain), via npm world-atlas 2.x (ISC)",
        "frame": "equirectangular: x = lon + 180, y = 90 - lat, viewBox 0 0 360 180",
        "path": "".join(p for p in parts if p),
    }
    with open(dst, "w") as f:
        json.dump(asset, f, separators=(",", ":"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
