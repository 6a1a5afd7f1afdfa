"""Shared helpers for the format tests: random trajectories, comparisons, fuzz mutations."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from parascale_blender.core.camera import SparsePoints, Trajectory, make_c2w
from parascale_blender.core.rotation import matrix_from_quat


def random_trajectory(
    seed: int,
    n: int = 6,
    *,
    square: bool = False,
    centred: bool = False,
    points: bool = False,
    extras: bool = False,
    size: tuple[int, int] | None = None,
) -> Trajectory:
    """A valid random track; ``square``: fx == fy; ``centred``: principal point at the image centre."""
    rng = np.random.default_rng(seed)
    w, h = size or (int(rng.integers(16, 4000)), int(rng.integers(16, 4000)))
    q = rng.normal(size=(n, 4))
    R = matrix_from_quat(q)
    t = rng.normal(size=(n, 3)) * 10.0 ** rng.uniform(-3, 3)
    fx = rng.uniform(0.3, 3.0, n) * w
    fy = fx.copy() if square else fx * rng.uniform(0.8, 1.25, n)
    cx = np.full(n, w / 2.0) if centred else rng.uniform(0.3, 0.7, n) * w
    cy = np.full(n, h / 2.0) if centred else rng.uniform(0.3, 0.7, n) * h
    frames = int(rng.integers(-5, 100)) + np.cumsum(rng.integers(1, 4, n))
    traj = Trajectory(
        frames, make_c2w(R, t), np.stack([fx, fy, cx, cy], 1), w, h, fps=float(rng.choice([12, 23.976, 24, 30, 60]))
    )
    if points:
        m = int(rng.integers(0, 30))
        vis = [np.sort(rng.choice(m, size=int(rng.integers(0, m + 1)), replace=False)) for _ in range(n)] if m else None
        traj.points = SparsePoints(rng.normal(size=(m, 3)), rng.integers(0, 256, (m, 3)).astype(np.uint8), vis)
    if extras:
        a = rng.normal(size=n)
        a[0] = np.nan
        traj.extras = {"pi_ref": a, "alpha": np.abs(a)}
        traj.metadata = {"source": "test", "mode": "harmonic", "pce": 0.25, "nested": {"k": [1, 2, None]}}
    return traj


def trajectories(**kw) -> st.SearchStrategy[Trajectory]:
    return st.builds(lambda seed, n: random_trajectory(seed, n, **kw), st.integers(0, 2**32 - 1), st.integers(1, 12))


def assert_same_track(a: Trajectory, b: Trajectory, atol: float = 1e-9, frames: bool = True) -> None:
    if frames:
        np.testing.assert_array_equal(a.frames, b.frames)
    assert (a.width, a.height) == (b.width, b.height)
    scale = max(1.0, float(np.abs(a.c2w).max()))
    np.testing.assert_allclose(a.c2w, b.c2w, rtol=0, atol=atol * scale)
    np.testing.assert_allclose(a.intrinsics, b.intrinsics, rtol=1e-9, atol=atol)


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Malformed variants of a valid file: byte edits, truncations, token swaps, random bytes."""
    junk = st.sampled_from(
        [b"", b"x", b"nan", b"inf", b"-1", b"0", b"1e999", b"\xff", b",", b"\n", b" ", b"{", b"]", b"null", b"\x00",
         b"-0", b"99999999999999999999", b"1.5", b"[]", b"{}", b'"a"', b"true"]
    )  # fmt: skip

    def edit(data: bytes, pos: int, n_del: int, ins: bytes) -> bytes:
        pos = pos % (len(data) + 1)
        return data[:pos] + ins + data[pos + n_del :]

    def swap_token(data: bytes, k: int, ins: bytes) -> bytes:
        toks = data.split(b" ")
        k = k % len(toks)
        toks[k] = ins
        return b" ".join(toks)

    return st.one_of(
        st.builds(edit, st.just(valid), st.integers(0, len(valid)), st.integers(0, 8), junk),
        st.builds(lambda n: valid[: n % (len(valid) + 1)], st.integers(0, len(valid))),
        st.builds(swap_token, st.just(valid), st.integers(0, 10**6), junk),
        st.builds(lambda d, k: d.replace(b" ", b",", k), st.just(valid), st.integers(1, 3)),
        st.builds(lambda d, k: b"\n".join(d.split(b"\n")[: k % 5] + d.split(b"\n")[k % 5 + 1 :]), st.just(valid),
                  st.integers(0, 20)),
        st.binary(max_size=200),
        st.builds(lambda d, b: d[: len(d) // 2] + b, st.just(valid), st.binary(max_size=50)),
    )  # fmt: skip
