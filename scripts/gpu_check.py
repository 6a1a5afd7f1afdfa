#!/usr/bin/env python3
"""Run every generation backend on its real-config model on a GPU the way a default job does, and
report speed and memory.

For each published model whose configuration folder is in ``--configs`` (default
``tests/fixtures/published``, the configs committed with their sources), a folder with random
weights of the published sizes is written in the model's published layout, one component at a
time in the dtype the job loads it in (``--dtype``, default ``auto``: bf16 on CUDA with Wan's VAE
and image encoder in fp32, as the backends load them), then the real backend runs a default job on
a synthetic shot (truck + pan over a slanted plane): ``--steps`` (default 6, so that noise shaping
pastes), the model's trained length (81 frames for Wan, 49 for CogVideoX; ``--frames``), through
its text encoder (random UMT5/T5 of the published size with a stand-in tokenizer; ``--no-text-encoder``
uses ``prompt_embeds.safetensors`` instead), noise shaping on, once with ``cpu_offload`` off and
once on. The previous pipeline is freed before each run, so each peak is that run's own.

One JSON line per case and variant (printed as ``JSON {...}`` and appended to ``--jsonl``):
status (ok/error/skipped), seconds per denoising step (median after the first), seconds to the
shaping preview, total seconds, peak GPU memory, peak host RSS, and the shaping pastes with the
noise level (σ, or t for DDPM-family schedulers) of each. A table is printed at the end. The
``depth-anything`` row runs Depth Anything V2 Metric Indoor Small; ``warp`` (no weights) is timed
per frame. A rerun in the same ``--workdir`` after a killed run starts from clean folders.

``--rehearse`` runs the same code on this machine's CPU on shrunk copies of the configs (depth and
width only, ``tests/server/published_models.SHRINK``) and few frames: what the tests run.
``--dry-run`` builds every model on PyTorch's meta device, reports parameter counts and bf16 sizes,
and runs nothing.

    python scripts/gpu_check.py --jsonl gpu_check.jsonl
    python scripts/gpu_check.py --rehearse --frames 9
    python scripts/gpu_check.py --dry-run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
HELPERS = ROOT / "tests" / "server"  # published_models: VideoX-Fun key converters, the shrink table

PROMPT = "a slow camera move through a sunlit room, wooden floor, plants by the window"


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
    Case("wan2.1-i2v-14b-480p", "diffusers-i2v", "wan2.1-i2v-14b-480p-diffusers", 832, 480, 81, "diffusers"),
    Case("cogvideox-5b-i2v", "diffusers-i2v", "cogvideox-5b-i2v", 720, 480, 49, "diffusers"),
    Case(
        "wan2.1-fun-1.3b-control-camera",
        "wan-fun-camera",
        "wan2.1-fun-v1.1-1.3b-control-camera",
        832,
        480,
        81,
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
    dtype: str = ""
    frames: int | None = None
    size: str = ""
    steps: int | None = None
    text_encoder: bool | None = None
    s_per_step: float | None = None
    preview_s: float | None = None
    total_s: float | None = None
    peak_gpu_gb: float | None = None
    peak_rss_gb: float | None = None
    shaping_pastes: int | None = None
    shaping_sigmas: list[float] = field(default_factory=list)
    note: str = ""
    extra: dict = field(default_factory=dict)


def _cfg(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_") and k != "architectures"}


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _helpers():
    """tests/server/published_models (None when the tests are not in this checkout)."""
    if str(HELPERS) not in sys.path:
        sys.path.insert(0, str(HELPERS))
    try:
        import published_models
    except ImportError:
        return None
    return published_models


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def _sync(device: str) -> None:
    import torch

    if _is_cuda(device):
        torch.cuda.synchronize(device)


def free_memory(device: str) -> None:
    """Drop every cached pipeline and model, collect, and reset the peak counter: the next run's
    peak is its own (not the previous pipeline's)."""
    import torch

    from bridge_server.backends import depth_anything, diffusers_i2v

    diffusers_i2v._CACHE.clear()
    depth_anything._CACHE.clear()
    gc.collect()
    if _is_cuda(device):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def component_specs(folder: Path, text_encoder: bool):
    """[(component, library, class name, config dict)] of a diffusers-layout config folder's models
    (schedulers and processors have no weights; the tokenizer is written separately)."""
    index = _read(folder / "model_index.json")
    out = []
    for comp, spec in index.items():
        if comp.startswith("_") or comp == "tokenizer" or not isinstance(spec, list) or spec[1] is None:
            continue
        if comp == "text_encoder" and not text_encoder:
            continue
        cfg_file = folder / comp / "config.json"
        if cfg_file.is_file():
            out.append((comp, spec[0], spec[1], _read(cfg_file)))
    return out


def build_model(lib: str, cls_name: str, cfg: dict, device: str, dtype=None):
    """One model from its config on ``device``, its parameters made directly in ``dtype``."""
    import diffusers
    import torch
    import transformers

    prev = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if lib == "diffusers":
                return getattr(diffusers, cls_name).from_config(cfg)
            cls = getattr(transformers, cls_name)
            return cls(cls.config_class(**_cfg(cfg)))
    finally:
        torch.set_default_dtype(prev)


def diffusers_components(folder: Path, device: str, text_encoder: bool = False):
    """{component: model} of a diffusers-layout config folder on ``device`` (meta: shapes only)."""
    return {c: build_model(lib, cls, cfg, device) for c, lib, cls, cfg in component_specs(folder, text_encoder)}


def videox_fun_state_dicts(folder: Path, device: str = "meta", vae_base_dim: int | None = 96):
    """(config, transformer + adapter state dict, VAE state dict) of the VideoX-Fun layout, from the
    tests' published-model helpers (the original-key converters live there); None when absent."""
    pm = _helpers()
    if pm is None:
        return None
    cfg = _read(folder / "config.json")
    return cfg, *pm.fun_state_dicts(cfg, device=device, vae_base_dim=vae_base_dim)


def count(models) -> tuple[float, float]:
    n = sum(p.numel() for m in models for p in (m.values() if isinstance(m, dict) else m.parameters()))
    return n / 1e9, 2 * n / 1e9


def plan(case: Case, configs: Path) -> Row:
    """The dry-run row: the model built on the meta device from its configs (without text encoder)."""
    folder = configs / case.folder
    row = Row(case.name, case.backend, "meta", "planned")
    if not folder.is_dir():
        row.status, row.note = "skipped", f"no config folder {folder}"
        return row
    try:
        if case.layout == "diffusers":
            row.params_b, row.weights_gb_bf16 = count(diffusers_components(folder, "meta").values())
        elif case.layout == "videox-fun":
            vae_cfg = configs / WAN_FOLDER / "vae" / "config.json"
            got = videox_fun_state_dicts(folder, "meta", _read(vae_cfg)["base_dim"] if vae_cfg.is_file() else 96)
            if got is None:
                row.status, row.note = "skipped", "tests/server/published_models.py (VideoX-Fun key converter) absent"
                return row
            _, sd, vae = got
            row.params_b, row.weights_gb_bf16 = count([sd, vae])
        else:
            cfg = _read(folder / "config.json")
            row.params_b, row.weights_gb_bf16 = count(
                [build_model("transformers", cfg["architectures"][0], cfg, "meta")]
            )
    except Exception as e:  # a config this diffusers/transformers cannot build: report, go on
        row.status, row.note = "error", f"{type(e).__name__}: {e}"[:300]
    return row


# --- materialising random-weight folders --------------------------------------------------------

WAN_FOLDER = "wan2.1-i2v-14b-480p-diffusers"


def _prompt_embeds(out: Path, tokens: int, width: int) -> None:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    pe, ne = torch.zeros(1, tokens, width), torch.zeros(1, tokens, width)
    pe[:, :8] = torch.randn(1, 8, width, generator=g)
    ne[:, :2] = torch.randn(1, 2, width, generator=g)
    save_file({"prompt_embeds": pe, "negative_prompt_embeds": ne}, str(out / "prompt_embeds.safetensors"))


def write_tokenizer(out: Path, vocab_size: int, max_length: int) -> None:
    """A stand-in tokenizer (whitespace words, ``vocab_size`` ids, pad 0, eos 1): the real ones cannot
    be built offline; the text encoder still runs at the published token count (padding to max length)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = PROMPT.replace(",", " ").split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in words:
        if len(vocab) < vocab_size:
            vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=max_length
    )
    fast.save_pretrained(out)


def write_diffusers(folder: Path, out: Path, device: str, dtype: str, text_encoder: bool, only=None) -> None:
    """``only``: the components to write (default all); the others are listed as absent."""
    import torch

    from bridge_server.backends.diffusers_i2v import FP32_COMPONENTS
    from bridge_server.backends.weights import component_dtypes

    index = _read(folder / "model_index.json")
    dtypes = component_dtypes(dtype, device, FP32_COMPONENTS.get(index["_class_name"], ()))
    out.mkdir(parents=True)
    for comp, lib, cls, cfg in component_specs(folder, text_encoder):
        if only is not None and comp not in only:
            index[comp] = [None, None]
            continue
        model = build_model(lib, cls, cfg, device, dtypes.get(comp, dtypes["default"]))
        model.save_pretrained(out / comp, max_shard_size="20GB")
        del model
        gc.collect()
        if _is_cuda(device):
            torch.cuda.empty_cache()
    for comp in ("scheduler", "image_processor"):
        if (folder / comp).is_dir():
            shutil.copytree(folder / comp, out / comp)
    t = _read(folder / "transformer" / "config.json")
    tokens = t.get("max_text_seq_length", 512)  # CogVideoX: T5 at 226 tokens; Wan: UMT5 at 512
    if text_encoder and (folder / "text_encoder" / "config.json").is_file():
        write_tokenizer(out / "tokenizer", _read(folder / "text_encoder" / "config.json")["vocab_size"], tokens)
        index["tokenizer"] = ["transformers", "PreTrainedTokenizerFast"]
    else:
        index |= {k: [None, None] for k in TEXT_ENCODERS}
        _prompt_embeds(out, tokens, t.get("text_embed_dim", t.get("text_dim")))
    (out / "model_index.json").write_text(json.dumps(index, indent=2))


def write_videox_fun(folder: Path, out: Path, device: str, dtype: str, text_encoder: bool) -> None:
    """The release's layout (original Wan keys, ``Wan2.1_VAE.pth``), converted as a user would with
    ``parascale convert-wan-fun``; text and image encoders from the Wan I2V configs beside it."""
    import torch
    from safetensors.torch import save_file

    from bridge_server.backends.wan_fun import convert_videox_fun
    from bridge_server.backends.weights import torch_dtype

    wan = folder.parent / WAN_FOLDER
    got = videox_fun_state_dicts(folder, device, _read(wan / "vae" / "config.json")["base_dim"])
    if got is None:
        raise RuntimeError("tests/server/published_models.py (VideoX-Fun key converter) absent")
    cfg, sd, vae = got
    td = torch_dtype(dtype, device)
    release, encoders = out.with_name(out.name + ".release"), out.with_name(out.name + ".encoders")
    release.mkdir(parents=True)
    (release / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(
        {k: v.to(td).cpu().contiguous() for k, v in sd.items()}, str(release / "diffusion_pytorch_model.safetensors")
    )
    del sd
    torch.save({k: v.float().cpu() for k, v in vae.items()}, release / "Wan2.1_VAE.pth")
    del vae
    write_diffusers(wan, encoders, device, dtype, text_encoder, only=("text_encoder", "image_encoder"))
    convert_videox_fun(release, out, encoders, log=lambda m: None)
    shutil.rmtree(release), shutil.rmtree(encoders)


def write_transformers(folder: Path, out: Path, device: str, dtype: str, text_encoder: bool) -> None:
    from bridge_server.backends.weights import torch_dtype

    cfg = _read(folder / "config.json")
    build_model("transformers", cfg["architectures"][0], cfg, device, torch_dtype(dtype, device)).save_pretrained(out)
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


class RssPeak:
    """Peak resident set size of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.peak, self._stop = self._rss(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


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
    pastes: list[float] = []
    if hasattr(backend, "shaping_hook"):
        backend.shaping_hook = lambda ev: pastes.append(ev.t) if ev.applied else None
    _sync(device)
    if _is_cuda(device):
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with RssPeak() as rss:
            t0 = time.perf_counter()
            result = backend.generate(job, lambda f, m: stamps.append((time.perf_counter(), m)), lambda: False)
            _sync(device)
            total = time.perf_counter() - t0
    finally:
        if hasattr(backend, "shaping_hook"):
            backend.shaping_hook = None
    steps = [t for t, m in stamps if m.startswith("step ") or m.startswith("frame ")]
    durations = np.diff([t0, *steps]).tolist()
    preview = next((t - t0 for t, m in stamps if m == "preview rendered"), None)
    return {
        "s_per_step": statistics.median(durations[1:] or durations) if durations else None,
        "preview_s": preview,
        "total_s": total,
        "peak_gpu_gb": torch.cuda.max_memory_allocated(device) / 1e9 if _is_cuda(device) else None,
        "peak_rss_gb": rss.peak / 1e9,
        "pastes": pastes,
        "result": result or {},
        "log_tail": logs[-8:],
    }


def _remove(paths) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


def clean(workdir: Path, out: Path, case: Case, results: bool = True) -> None:
    """Remove what a killed run of ``case`` may have left: its model folder, the release/encoder/partial
    folders beside it, and (``results``) its result files."""
    _remove([out, *out.parent.glob(out.name + ".*")] if out.parent.is_dir() else [])
    if results:
        _remove(workdir.glob(f"{case.name}-*"))


def check(case: Case, configs: Path, workdir: Path, device: str, opts: argparse.Namespace, emit) -> list[Row]:
    """Materialise ``case``'s folder and run its variants; one row per variant (each also passed to ``emit``)."""
    from bridge_server.backends import get_backend
    from bridge_server.backends.model_limits import model_limits

    folder = configs / case.folder
    if not folder.is_dir():
        row = Row(case.name, case.backend, "-", "skipped", note=f"no config folder {folder}")
        emit(row)
        return [row]
    if case.name.startswith("wan") and opts.frames:
        case = replace(case, frames=opts.frames)
    if opts.width and opts.height and case.backend != "depth-anything":
        case = replace(case, width=opts.width, height=opts.height)
    limits = model_limits(folder)  # CogVideoX-5b: its config's size and length, whatever is asked
    if limits is not None and limits.exact_frames:
        case = replace(case, frames=limits.max_frames)
    if limits is not None and limits.exact_size:
        case = replace(case, width=limits.native_width, height=limits.native_height)
    out = workdir / case.backend / case.name
    clean(workdir, out, case)
    free_memory(device)
    planned = plan(case, configs)
    base = {"dtype": opts.dtype, "frames": case.frames, "size": f"{case.width}x{case.height}"}
    try:
        WRITERS[case.layout](folder, out, device, opts.dtype, opts.text_encoder)
    except Exception as e:
        row = Row(case.name, case.backend, "-", "error", note=f"building weights: {type(e).__name__}: {e}"[:300])
        emit(row)
        return [row]
    finally:
        free_memory(device)
    variants = {"offload-off": False, "offload-on": True} if _is_cuda(device) else {"cpu": False}
    if case.backend == "depth-anything":
        variants = {opts.dtype: False}
    suffix = get_backend(case.backend).result_suffix
    rows = []
    for variant, offload in variants.items():
        params = {
            "dtype": opts.dtype,
            "cpu_offload": offload,
            "noise_shaping": True,
            "steps": opts.steps,
            "prompt": PROMPT,
            "width": case.width,
            "height": case.height,
        }
        row = Row(case.name, case.backend, variant, "ok", planned.params_b, planned.weights_gb_bf16, **base)
        if case.backend != "depth-anything":
            row.steps, row.text_encoder = opts.steps, opts.text_encoder
        free_memory(device)  # the previous variant's pipeline is not part of this one's peak
        try:
            got = run_job(case.backend, case.name, case, params, device, workdir / f"{case.name}-{variant}{suffix}")
            row.s_per_step, row.preview_s, row.total_s = got["s_per_step"], got["preview_s"], got["total_s"]
            row.peak_gpu_gb, row.peak_rss_gb = got["peak_gpu_gb"], got["peak_rss_gb"]
            if case.backend != "depth-anything":
                row.shaping_pastes, row.shaping_sigmas = len(got["pastes"]), [round(s, 4) for s in got["pastes"]]
            row.extra = {"result": got["result"], "log_tail": got["log_tail"]}
        except Exception as e:  # one model failing must not hide the others
            row.status, row.note = "error", f"{type(e).__name__}: {e}"[:300]
        emit(row)
        rows.append(row)
    free_memory(device)
    clean(workdir, out, case, results=False)  # the weights go; the results stay for a look
    return rows


def check_warp(workdir: Path, device: str, frames: int, width: int, height: int, emit) -> Row:
    case = Case(f"warp-{width}x{height}x{frames}", "warp", "-", width, height, frames, "-")
    row = Row(case.name, "warp", "s/frame", "ok", frames=frames, size=f"{width}x{height}")
    clean(workdir, workdir / case.name, case)
    try:
        got = run_job("warp", "default", case, {}, device, workdir / f"{case.name}-s-frame.mp4")
        row.s_per_step, row.total_s = got["s_per_step"], got["total_s"]
        row.peak_gpu_gb, row.peak_rss_gb = got["peak_gpu_gb"], got["peak_rss_gb"]
    except Exception as e:
        row.status, row.note = "error", f"{type(e).__name__}: {e}"[:300]
    emit(row)
    return row


def table(rows: list[Row]) -> str:
    def f(x, nd=3):
        return "-" if x is None else f"{x:.{nd}f}"

    head = f"{'case':38} {'variant':11} {'status':7} {'params B':>8} {'s/step':>8} {'preview s':>9} "
    head += f"{'total s':>8} {'GPU GB':>7} {'RSS GB':>7} {'pastes':>6}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        pastes = "-" if r.shaping_pastes is None else str(r.shaping_pastes)
        lines.append(
            f"{r.case:38} {r.variant:11} {r.status:7} {f(r.params_b, 2):>8} {f(r.s_per_step):>8} "
            f"{f(r.preview_s, 2):>9} {f(r.total_s, 1):>8} {f(r.peak_gpu_gb, 1):>7} {f(r.peak_rss_gb, 1):>7} "
            f"{pastes:>6}  {r.note}"
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
    ap.add_argument("--steps", type=int, default=6, help="denoising steps per run (default 6; >= 5 for shaping)")
    ap.add_argument("--frames", type=int, default=None, help="frames per Wan job (default the trained 81)")
    ap.add_argument("--width", type=int, default=None, help="job width (with --height; default each model's)")
    ap.add_argument("--height", type=int, default=None, help="job height (with --width)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="job dtype (auto)")
    ap.add_argument(
        "--no-text-encoder",
        dest="text_encoder",
        action="store_false",
        help="prompt_embeds.safetensors instead of the text encoder",
    )
    ap.add_argument("--only", nargs="*", default=None, help="case names to run (default all)")
    ap.add_argument("--workdir", type=Path, default=None, help="where weights and results go (default a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as a JSON list here")
    ap.add_argument("--jsonl", type=Path, default=None, help="append one JSON line per row here as rows finish")
    ap.add_argument("--rehearse", action="store_true", help="CPU run on shrunk configs (what the tests run)")
    ap.add_argument("--dry-run", action="store_true", help="build the models on the meta device only (no GPU needed)")
    args = ap.parse_args(argv)

    cases = [c for c in CASES if not args.only or c.name in args.only]
    rows: list[Row] = []

    def emit(row: Row) -> None:
        line = json.dumps(asdict(row), default=str)
        print("JSON " + line, flush=True)
        if args.jsonl:
            with open(args.jsonl, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    if args.dry_run:
        rows = [plan(c, args.configs) for c in cases]
        for r in rows:
            emit(r)
    else:
        import torch

        if args.rehearse:
            args.device = "cpu"
        if not args.rehearse and not (_is_cuda(args.device) and torch.cuda.is_available()):
            print(f"gpu_check: no CUDA device for {args.device!r}: nothing run (--dry-run or --rehearse run here)")
            rows = [Row(c.name, c.backend, "-", "skipped", note="no CUDA device") for c in cases]
        else:
            from bridge_server.backends.weights import ENV

            workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
            workdir.mkdir(parents=True, exist_ok=True)
            configs = args.configs
            if args.rehearse:
                pm = _helpers()
                if pm is None:
                    raise SystemExit("gpu_check --rehearse needs tests/server/published_models.py")
                configs = pm.shrunk_configs(workdir / "configs", args.configs)
            os.environ[ENV] = str(workdir)
            name = torch.cuda.get_device_name(args.device) if _is_cuda(args.device) else args.device
            print(f"gpu_check: {name}, weights written under {workdir}", flush=True)
            for c in cases:
                print(f"gpu_check: {c.name} ...", flush=True)
                rows += check(c, configs, workdir, args.device, args, emit)
            size = (args.width, args.height) if args.width and args.height else (832, 480)
            rows.append(check_warp(workdir, args.device, args.frames or 81, *size, emit))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str))
    return 1 if any(r.status == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
