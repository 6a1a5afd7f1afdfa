"""ParaScale's local generation server: FastAPI app, on-disk job queue, backends (default ``warp``).

Start it with ``parascale-server`` or ``python -m bridge_server`` (127.0.0.1:8765 by default).
Modules: ``app`` (HTTP API), ``jobs`` (job folders, worker threads), ``inputs`` (upload
decoding and validation), ``backends`` (registry and contract; ``warp``), ``render`` (torch
splatting), ``video`` (PyAV MP4), ``config`` (settings and limits), ``models`` (pydantic bodies).
"""

__version__ = "0.1.0"
