"""Edge node: ONNX predictions and model artifacts behind tiered caches.

The same program is an edge (with an upstream), a regional shield (an edge that other
edges name as upstream) or the origin (no upstream; the master model folder). Entry
points: `edge.app.build_app` (one `edge.config.EdgeConfig` → aiohttp application, node
at ``app[edge.node.NODE]``) and the ``edge`` command (`edge.cli`).
"""

__version__ = "0.1.0"
