#!/usr/bin/env python3
"""Run every generation backend on its real-config model on a GPU and report speed and memory.

For each published model whose configuration folder is in ``--configs`` (default
``tests/fixtures/published``, the configs committed with their sources), a folder with random
weights of the published sizes is written in the model's published layout (bf16; text encoders
replaced by ``prompt_embeds.safetensors`` of the published token count and width), then the real
backend runs a job on a synthetic shot (truck + pan over a slanted plane) with noise shaping on,
once with ``cpu_offload`` off and once on. Reported per run: seconds per denoising step (median
of the steps after the first), seconds to the shaping preview, total seconds, and peak CUDA
memory; as a table and as JSON (``--json``). The ``warp`` backend (no weights) is timed per frame.

A missing configuration folder is skipped with a message. ``--dry-run`` (any machine, no GPU
needed) builds every model on PyTorch's meta device from its configuration, reports parameter
counts and bf16 weight sizes, and runs nothing.

    python scripts/gpu_check.py --configs tests/fixtures/published --json gpu_check.json
    python scripts/gpu_check.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Case:
    """One published model: its config folder, the backend serving it, and the job's size."""

    name: str
    backend: str
    folder: str  # under --configs
    width: int
    height: int
    frames: int
    layout: str  # "diffusers", "videox-fun" or "transformers"


CASES = (
    Case("wan2.1-i2v-14b-480p", "diffusers-i2v", "wan2.1-i2v-14b-480p-diffusers", 832, 480, 17, "diffusers"),
    Case("cogvideox-5b-i2v", "diffusers-i2v", "cogvideox-5b-i2v", 720, 480, 49, "diffusers"),
    Case(
        "wan2.1-fun-1.3b-control-camera",
        "wan-fun-camera",
        "wan2.1-fun-v1.1-1.3b-control-camera",
        832,
        480,
        17,
        "videox-fun",
    ),
    Case(
        "depth-anything-v2-metric-indoor-small",
        "depth-anything",
        "depth-anything-v2-metric-indoor-small-hf",
        832,
        480,
        1,
        "transformers",
    ),
)
TEXT_ENCODERS = ("text_encoder", "tokenizer")


@dataclass
class Row:
    case: str
    backend: str
    variant: str
    status: str  # ok, planned, skipped, error
    params_b: float | None = None
    weights_gb_bf16: float | None = None
    s_per_step: float | None = None
    preview_s: float | None = None
    total_s: float | None = None
    peak_gb: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def _cfg(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_") and k != "architectures"}


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def diffusers_components(folder: Path, device: str):
    """{component: model} of a diffusers-layout config folder, weights on ``device`` (meta: shapes only).
    Text encoders are left out (prompt embeddings replace them); schedulers and processors are not models."""
    import diffusers
    import torch
    import transformers

    index = _read(folder / "model_index.json")
    out = {}
    for comp, spec in index.items():
        if comp.startswith("_") or comp in TEXT_ENCODERS or not isinstance(spec, list) or spec[1] is None:
            continue
        lib, cls_name = spec
        cfg_file = folder / comp / "config.json"
        if not cfg_file.is_file():
            continue  # schedulers, image processors
        cfg = _read(cfg_file)
        with torch.device(device):
            if lib == "diffusers":
                out[comp] = getattr(diffusers, cls_name).from_config(cfg)
            else:
                cls = getattr(transformers, cls_name)
                out[comp] = cls(cls.config_class(**_cfg(cfg)))
    return out


def videox_fun_state_dicts(folder: Path):
    """(transformer + adapter, VAE) state dicts of the VideoX-Fun layout on the meta device, from the
    tests' published-model helpers (the original-key converters live there); None when absent."""
    sys.path.insert(0, str(ROOT / "tests" / "server"))
    try:
        import published_models as pm
    except ImportError:
        return None
    cfg = _read(folder / "config.json")
    return cfg, *pm.fun_state_dicts(cfg, device="meta")


def count(models) -> tuple[float, float]:
    n = sum(p.numel() for m in models for p in (m.values() if isinstance(m, dict) else m.parameters()))
    return n / 1e9, 2 * n / 1e9


def plan(case: Case, configs: Path) -> Row:
    """The dry-run row: the model built on the meta device from its configs."""
    folder = configs / case.folder
    row = Row(case.name, case.backend, "meta", "planned")
    if not folder.is_dir():
        row.status, row.note = "skipped", f"no config folder {folder}"
        return row
    try:
        if case.layout == "diffusers":
            row.params_b, row.weights_gb_bf16 = count(diffusers_components(folder, "meta").values())
        elif case.layout == "videox-fun":
            got = videox_fun_state_dicts(folder)
            if got is None:
                row.status, row.note = "skipped", "tests/server/published_models.py (VideoX-Fun key converter) absent"
                return row
            _, sd, vae = got
            row.params_b, row.weights_gb_bf16 = count([sd, vae])
        else:
            import torch
            import transformers

            with torch.device("meta"):
                cfg = _read(folder / "config.json")
                cls = getattr(transformers, cfg["architectures"][0])
                row.params_b, row.weights_gb_bf16 = count([cls(cls.config_class(**_cfg(cfg)))])
    except Exception as e:  # a config this diffusers/transformers cannot build: report, go on
        row.status, row.note = "error", f"{type(e).__name__}: {e}"[:300]
    return row


# --- materialising random-weight folders on the GPU ---------------------------------------------


def _prompt_embeds(out: Path, tokens: int, width: int) -> None:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    pe, ne = torch.zeros(1, tokens, width), torch.zeros(1, tokens, width)
    pe[:, :8] = torch.randn(1, 8, width, generator=g)
    ne[:, :2] = torch.randn(1, 2, width, generator=g)
    save_file({"prompt_embeds": pe, "negative_prompt_embeds": ne}, str(out / "prompt_embeds.safetensors"))


def write_diffusers(folder: Path, out: Path, device: str) -> None:
    import torch

    out.mkdir(parents=True)
    for comp, model in diffusers_components(folder, device).items():
        model.to(torch.bfloat16).save_pretrained(out / comp, max_shard_size="20GB")
        del model
        torch.cuda.empty_cache()
    for comp in ("scheduler", "image_processor"):
        if (folder / comp).is_dir():
            shutil.copytree(folder / comp, out / comp)
    index = _read(folder / "model_index.json") | {k: [None, None] for k in TEXT_ENCODERS}
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    t = _read(folder / "transformer" / "config.json")
    if "max_text_seq_length" in t:  # CogVideoX: T5 at 226 tokens
        _prompt_embeds(out, t["max_text_seq_length"], t["text_embed_dim"])
    else:  # Wan: UMT5 at 512 tokens
        _prompt_embeds(out, 512, t["text_dim"])


def write_videox_fun(folder: Path, out: Path, device: str) -> None:
    import torch
    from safetensors.torch import save_file

    got = videox_fun_state_dicts(folder)
    if got is None:
        raise RuntimeError("tests/server/published_models.py (VideoX-Fun key converter) absent")
    cfg, sd, vae = got
    out.parent.mkdir(parents=True, exist_ok=True)

    def rand(d):
        return {k: (0.02 * torch.randn(v.shape, device=device)).to(torch.bfloat16).contiguous() for k, v in d.items()}

    release, encoders = out.with_name(out.name + ".release"), out.with_name(out.name + ".encoders")
    release.mkdir()
    (release / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file({k: v.cpu() for k, v in rand(sd).items()}, str(release / "diffusion_pytorch_model.safetensors"))
    torch.save({k: v.float().cpu() for k, v in rand(vae).items()}, release / "Wan2.1_VAE.pth")
    # The backend takes the release converted (parascale convert-wan-fun), with the CLIP image encoder
    # of a diffusers Wan 2.1 I2V folder: that folder's published CLIP config, random weights.
    import transformers

    from bridge_server.backends.wan_fun import convert_videox_fun

    wan = folder.parent / "wan2.1-i2v-14b-480p-diffusers"
    index = _read(wan / "model_index.json")
    with torch.device(device):
        clip = transformers.CLIPVisionModel(
            transformers.CLIPVisionConfig(**_cfg(_read(wan / "image_encoder" / "config.json")))
        )
    clip.to(torch.bfloat16).save_pretrained(encoders / "image_encoder")
    shutil.copytree(wan / "image_processor", encoders / "image_processor")
    enc_index = {"_class_name": index["_class_name"], "image_encoder": index["image_encoder"]}
    enc_index |= {"image_processor": index["image_processor"], **{k: [None, None] for k in TEXT_ENCODERS}}
    (encoders / "model_index.json").write_text(json.dumps(enc_index, indent=2))
    _prompt_embeds(encoders, 512, cfg["text_dim"])
    convert_videox_fun(release, out, encoders)
    shutil.rmtree(release), shutil.rmtree(encoders)


def write_transformers(folder: Path, out: Path, device: str) -> None:
    import torch
    import transformers

    cfg = _read(folder / "config.json")
    cls = getattr(transformers, cfg["architectures"][0])
    with torch.device(device):
        model = cls(cls.config_class(**_cfg(cfg)))
    model.save_pretrained(out)
    shutil.copy(folder / "preprocessor_config.json", out / "preprocessor_config.json")


WRITERS = {"diffusers": write_diffusers, "videox-fun": write_videox_fun, "transformers": write_transformers}


# --- the synthetic shot and the runs -----------------------------------------------------------


def shot(width: int, height: int, frames: int):
    """(trajectory, image, depth): a slanted textured plane 2-6 m away; the camera trucks 0.5 m and pans 3°."""
    from parascale_blender.core.camera import Trajectory

    f = 0.8 * width
    t = np.linspace(0.0, 1.0, frames)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    a = np.radians(3.0) * t
    c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = np.cos(a), np.sin(a), -np.sin(a), np.cos(a)
    c2w[:, 0, 3] = 0.5 * t
    K = np.tile([f, f, width / 2, height / 2], (frames, 1))
    traj = Trajectory(np.arange(1, frames + 1), c2w, K, width, height, 24.0)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3)).astype(np.uint8)
    import cv2

    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    depth = np.broadcast_to(np.linspace(2.0, 6.0, width, dtype=np.float32), (height, width)).copy()
    return traj, image, depth


def run_job(backend_name: str, model: str, case: Case, params: dict, device: str, out: Path) -> dict:
    import torch

    from bridge_server.backends import get_backend
    from bridge_server.backends.base import GenerationJob

    backend = get_backend(backend_name)
    known = backend.Params.model_fields
    p = backend.Params(**{k: v for k, v in ({"model": model} | params).items() if k in known})
    traj, image, depth = shot(case.width, case.height, max(case.frames, 1))
    logs: list[str] = []
    job = GenerationJob(traj, image, depth, p, out, device=device, log=logs.append)
    stamps: list[tuple[float, str]] = []
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = backend.generate(job, lambda f, m: stamps.append((time.perf_counter(), m)), lambda: False)
    torch.cuda.synchronize()
    total = time.perf_counter() - t0
    steps = [t for t, m in stamps if m.startswith("step ") or m.startswith("frame ")]
    durations = np.diff([t0, *steps]).tolist()
    preview = next((t - t0 for t, m in stamps if m == "preview rendered"), None)
    return {
        "s_per_step": statistics.median(durations[1:] or durations) if durations else None,
        "preview_s": preview,
        "total_s": total,
        "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
        "result": result or {},
        "log_tail": logs[-6:],
    }


def check(case: Case, configs: Path, workdir: Path, device: str, steps: int) -> list[Row]:
    """Materialise ``case``'s folder and run its variants; one row per variant."""
    import torch

    folder = configs / case.folder
    if not folder.is_dir():
        return [Row(case.name, case.backend, "-", "skipped", note=f"no config folder {folder}")]
    out = workdir / case.backend / case.name
    shutil.rmtree(out, ignore_errors=True)
    planned = plan(case, configs)
    try:
        WRITERS[case.layout](folder, out, device)
    except Exception as e:
        return [Row(case.name, case.backend, "-", "error", note=f"building weights: {type(e).__name__}: {e}"[:300])]
    finally:
        torch.cuda.empty_cache()
    variants = {"offload-off": False, "offload-on": True}
    if case.backend == "depth-anything":
        variants = {"bf16": False}
    rows = []
    for variant, offload in variants.items():
        params = {
            "dtype": "bf16",
            "cpu_offload": offload,
            "noise_shaping": True,
            "steps": steps,
            "width": case.width,
            "height": case.height,
        }
        row = Row(case.name, case.backend, variant, "ok", planned.params_b, planned.weights_gb_bf16)
        try:
            got = run_job(case.backend, case.name, case, params, device, workdir / f"{case.name}-{variant}.out")
            row.s_per_step, row.preview_s, row.total_s, row.peak_gb = (
                got["s_per_step"],
                got["preview_s"],
                got["total_s"],
                got["peak_gb"],
            )
            row.extra = {"result": got["result"], "log_tail": got["log_tail"]}
        except Exception as e:  # one model failing must not hide the others
            row.status, row.note = "error", f"{type(e).__name__}: {e}"[:300]
        rows.append(row)
        torch.cuda.empty_cache()
    shutil.rmtree(out, ignore_errors=True)
    return rows


def check_warp(workdir: Path, device: str) -> Row:
    case = Case("warp-832x480", "warp", "-", 832, 480, 17, "-")
    row = Row(case.name, "warp", "s/frame", "ok")
    try:
        got = run_job("warp", "default", case, {}, device, workdir / "warp.mp4")
        row.s_per_step, row.total_s, row.peak_gb = got["s_per_step"], got["total_s"], got["peak_gb"]
    except Exception as e:
        row.status, row.note = "error", f"{type(e).__name__}: {e}"[:300]
    return row


def table(rows: list[Row]) -> str:
    def f(x, nd=3):
        return "-" if x is None else f"{x:.{nd}f}"

    head = f"{'case':40} {'variant':12} {'status':8} {'params B':>8} {'bf16 GB':>8} {'s/step':>8} "
    head += f"{'preview s':>9} {'total s':>8} {'peak GB':>8}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.case:40} {r.variant:12} {r.status:8} {f(r.params_b, 2):>8} {f(r.weights_gb_bf16, 1):>8} "
            f"{f(r.s_per_step):>8} {f(r.preview_s, 2):>9} {f(r.total_s, 1):>8} {f(r.peak_gb, 1):>8}  {r.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--configs", type=Path, default=ROOT / "tests" / "fixtures" / "published", help="published configs folder"
    )
    ap.add_argument("--device", default="cuda", help="torch device to run on (default cuda)")
    ap.add_argument("--steps", type=int, default=3, help="denoising steps per run (default 3)")
    ap.add_argument("--only", nargs="*", default=None, help="case names to run (default all)")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where random-weight folders are written (default a temp dir)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--dry-run", action="store_true", help="build the models on the meta device only (no GPU needed)")
    args = ap.parse_args(argv)

    cases = [c for c in CASES if not args.only or c.name in args.only]
    rows: list[Row] = []
    if args.dry_run:
        rows = [plan(c, args.configs) for c in cases]
    else:
        import torch

        if not (args.device.startswith("cuda") and torch.cuda.is_available()):
            print(
                f"gpu_check: no CUDA device for {args.device!r}: nothing run (use --dry-run on a machine without one)"
            )
            rows = [Row(c.name, c.backend, "-", "skipped", note="no CUDA device") for c in cases]
        else:
            from bridge_server.backends.weights import ENV

            workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
            os.environ[ENV] = str(workdir)
            print(f"gpu_check: {torch.cuda.get_device_name(args.device)}, weights written under {workdir}", flush=True)
            for c in cases:
                print(f"gpu_check: {c.name} ...", flush=True)
                rows += check(c, args.configs, workdir, args.device, args.steps)
                print(table(rows[-2:]), flush=True)
            rows.append(check_warp(workdir, args.device))
    print(table(rows))
    doc = [asdict(r) for r in rows]
    print("JSON " + json.dumps(doc, default=str))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2, default=str))
    return 1 if any(r.status == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
