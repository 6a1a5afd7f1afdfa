"""Camera-track and depth file formats (numpy only); see :mod:`.registry` for read/write by name."""
