"""The model cache keeps one model per device: jobs alternating between two GPUs' workers do not
reload, and a device's old model is released before its new one loads (never two on one device)."""

from __future__ import annotations

import gc
import weakref

from bridge_server.backends.weights import ModelCache


class Model:
    pass


def test_one_model_per_device_and_the_old_one_freed_before_the_next_loads():
    cache, loads, alive_at_load = ModelCache(), [], []
    refs: list[weakref.ref] = []

    def loader(name):
        def load():
            gc.collect()
            alive_at_load.append(sum(r() is not None for r in refs))
            loads.append(name)
            m = Model()
            refs.append(weakref.ref(m))
            return m

        return load

    a = cache.get(("wan", "cuda:0"), loader("wan"), slot="cuda:0")
    b = cache.get(("cog", "cuda:1"), loader("cog"), slot="cuda:1")
    for _ in range(3):  # alternating jobs on the two devices: no reload
        assert cache.get(("wan", "cuda:0"), loader("wan"), slot="cuda:0") is a
        assert cache.get(("cog", "cuda:1"), loader("cog"), slot="cuda:1") is b
    assert loads == ["wan", "cog"]
    del a, b
    cache.get(("fun", "cuda:0"), loader("fun"), slot="cuda:0")  # replaces wan on cuda:0 only
    assert loads == ["wan", "cog", "fun"] and alive_at_load[-1] == 1  # wan freed first; cog still held
    assert refs[0]() is None and refs[1]() is not None
    cache.clear()
    gc.collect()
    assert all(r() is None for r in refs)
