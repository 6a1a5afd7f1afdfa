"""ParaScale's local generation server: FastAPI app, on-disk job queue, backends (default ``warp``).

Start it with ``parascale-server`` or ``python -m bridge_server`` (127.0.0.1:8765 by default).
Modules: ``app`` (the factory), ``routes`` (HTTP handlers), ``dependencies`` (what handlers need;
token and size guard), ``errors`` (JSON error answers), ``uploads`` (one decoder of a job's uploads,
for the route and the worker), ``inputs`` (single-upload decoders), ``jobs`` (job folders, worker
threads), ``backends`` (registry and contract; ``warp``), ``render`` (torch splatting), ``video``
(PyAV MP4), ``config`` (settings and limits), ``models`` (pydantic bodies). The wire vocabulary
shared with the add-on's client is ``parascale_blender.client.wire``.
"""

__version__ = "0.1.0"
