"""Device choice of ``parascale-server`` (CUDA, else Apple's MPS, else CPU; an explicit device is
checked), the warp backend's float64 work off MPS, and the token from ``$PARASCALE_TOKEN``."""

from __future__ import annotations

import pytest
import torch

from bridge_server import __main__ as server_main
from bridge_server.config import float64_device


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(2, True, ["cuda:0", "cuda:1"]), (0, True, ["mps"]), (0, False, ["cpu"])],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(server_main, "mps_available", lambda: mps)
    assert server_main.resolve_devices("auto") == expected


def test_an_explicit_device_must_exist(monkeypatch):
    monkeypatch.setattr(server_main, "mps_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert server_main.resolve_devices("cpu") == ["cpu"]
    with pytest.raises(ValueError, match="MPS is not available"):
        server_main.resolve_devices("mps")
    with pytest.raises(ValueError, match="CUDA is not available"):
        server_main.resolve_devices("cuda")
    monkeypatch.setattr(server_main, "mps_available", lambda: True)
    assert server_main.resolve_devices("mps") == ["mps"]


def test_float64_work_leaves_mps_for_the_cpu():
    assert float64_device("mps") == "cpu" and float64_device("mps:0") == "cpu"
    assert float64_device("cuda:1") == "cuda:1" and float64_device("cpu") == "cpu"


def test_the_token_comes_from_the_environment(monkeypatch):
    parse = server_main.build_parser().parse_args
    monkeypatch.setenv("PARASCALE_TOKEN", "s3cret-token")
    assert server_main.resolve_token(parse([])) == "s3cret-token"
    assert server_main.resolve_token(parse(["--token", "other-token"])) == "other-token"
    monkeypatch.delenv("PARASCALE_TOKEN")
    assert server_main.resolve_token(parse([])) is None
