"""bpy-free, torch-free science of ParaScale: cameras, depth, parallax, rescaling, metrics."""
