"""ParaScale tools: the ``parascale`` command line, the demo, the benchmarks and built-in scenes.

Not shipped in the Blender extension. Uses the engine (``parascale_blender.core``/``formats``) and,
for ``track``, the benchmarks and the demo's generation stage, the server package; neither of
those imports this one.
"""
