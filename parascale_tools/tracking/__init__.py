"""Tool-only tracking helpers: ``parascale track``, synthetic textured clips and track evaluation."""
