"""Noise shaping must survive the scheduler the published weights ship, measured on real diffusers
scheduler objects built from the published configurations (tests/fixtures/published/).

Survival of a paste: the shaper pastes ``delta = m * (noised preview - x)`` into the latents ``x``
after a scheduler step. The next scheduler step is run twice from the same scheduler state and the
same model output, once on the pasted latents ``x + delta`` (output ``y1``) and once on the
unpasted ``x`` (output ``y0``). Survival is the fraction of the paste still present in the masked
cells: ``<y1 - y0, delta> / <delta, delta>``. A step that keeps the paste gives ~1 (an Euler step
with a fixed model output gives exactly 1); UniPC's corrector, which rebuilds the latents from its
previous sample and model outputs, throws the paste away (~0).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from bridge_server.backends.noise_shaping import NoiseShaper  # noqa: E402

PUBLISHED = Path(__file__).resolve().parents[1] / "fixtures" / "published"
SCHEDULERS = {  # what each published checkpoint samples with
    "wan2.1-i2v-unipc": "wan2.1-i2v-14b-480p-diffusers/scheduler/scheduler_config.json",
    "cogvideox-5b-i2v-ddim": "cogvideox-5b-i2v/scheduler/scheduler_config.json",
    # No scheduler folder in the released Control-Camera checkpoint: VideoX-Fun builds
    # FlowMatchEulerDiscreteScheduler(**scheduler_kwargs) of its config/wan2.1/wan_civitai.yaml.
    "wan-fun-flowmatch-euler": "wan2.1-fun-v1.1-1.3b-control-camera/wan_civitai.yaml",
}
SHAPE = (1, 4, 3, 6, 8)  # (B, C, F', h, w): the layout is irrelevant to a scheduler step


def published_scheduler(name: str):
    path = PUBLISHED / SCHEDULERS[name]
    if path.suffix == ".yaml":
        import yaml

        kwargs = yaml.safe_load(path.read_text())["scheduler_kwargs"]
        return diffusers.FlowMatchEulerDiscreteScheduler(
            **{k: v for k, v in kwargs.items() if k != "scheduler_subpath"}
        )
    cfg = json.loads(path.read_text())
    return getattr(diffusers, cfg["_class_name"]).from_config(cfg)


def shaped_run(scheduler, steps: int, threshold: float = 0.9):
    """Sample ``steps`` steps with a toy model (a fixed random output per step) and the shaper in
    the pipeline's order (shape the initial latents, then step, callback, step, ...); at every
    applied paste, measure its survival through the next step. Returns the survivals."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(SHAPE, generator=g)
    preview = torch.randn(SHAPE, generator=g)
    mask = (torch.rand((1, 1, *SHAPE[2:]), generator=g) > 0.5).float()
    outputs = torch.randn((steps, *SHAPE), generator=g)
    scheduler.set_timesteps(steps)
    shaper = NoiseShaper(scheduler, preview, mask, noise, threshold)
    sigma0 = float(getattr(scheduler, "init_noise_sigma", 1.0))
    x = shaper.shape(noise * sigma0, -1)
    survivals = []
    pending = None  # (unpasted latents, paste) of the paste made after the previous step
    for i, t in enumerate(scheduler.timesteps):
        out = outputs[i]
        if pending is not None:
            x0, delta = pending
            y0 = copy.deepcopy(scheduler).step(out, t, x0).prev_sample
        y = scheduler.step(out, t, x).prev_sample
        if pending is not None:
            sel = delta != 0
            survivals.append(float(((y - y0)[sel] * delta[sel]).sum() / (delta[sel] ** 2).sum()))
        x = shaper.callback(None, i, t, {"latents": y})["latents"]
        pending = (y, x - y) if shaper.applied_steps and shaper.applied_steps[-1] == i else None
    return survivals


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@pytest.mark.parametrize("steps", [30, 50])
def test_a_paste_survives_the_next_step_of_the_published_scheduler(name, steps):
    scheduler = published_scheduler(name)
    survivals = shaped_run(scheduler, steps)
    assert len(survivals) >= 2, "the default threshold shapes several steps"
    print(f"{name} {steps} steps: survival min {min(survivals):.4f} max {max(survivals):.4f}")
    assert 0.95 <= min(survivals) and max(survivals) <= 1.05, survivals


def test_unipc_keeps_its_corrector_on_the_steps_after_unshaped_ones():
    """Only the step right after a paste skips UniPC's corrector: the rest of the sampling is unchanged."""
    ref = published_scheduler("wan2.1-i2v-unipc")
    sch = published_scheduler("wan2.1-i2v-unipc")
    steps = 20
    g = torch.Generator().manual_seed(1)
    x_ref = torch.randn(SHAPE, generator=g)
    outs = torch.randn((steps, *SHAPE), generator=g)
    ref.set_timesteps(steps)
    sch.set_timesteps(steps)
    mask = torch.zeros((1, 1, *SHAPE[2:]))  # an empty mask: the shaper pastes nothing
    shaper = NoiseShaper(sch, torch.zeros(SHAPE), mask, x_ref.clone(), threshold=2.0)  # never applies
    x = shaper.shape(x_ref.clone(), -1)
    for i, t in enumerate(ref.timesteps):
        x_ref = ref.step(outs[i], t, x_ref).prev_sample
        x = shaper.callback(None, i, t, {"latents": sch.step(outs[i], t, x).prev_sample})["latents"]
    assert torch.equal(x, x_ref)


def test_shaping_follows_the_latents_device_and_dtype():
    """Preview, noise and mask on the CPU (as encoded under cpu_offload), latents elsewhere: the
    paste is computed where the latents are, in their dtype (the meta device stands in for CUDA)."""
    for name in ("wan2.1-i2v-unipc", "cogvideox-5b-i2v-ddim"):
        scheduler = published_scheduler(name)
        scheduler.set_timesteps(10)
        shaper = NoiseShaper(scheduler, torch.randn(SHAPE), torch.ones((1, 1, *SHAPE[2:])), torch.randn(SHAPE))
        latents = torch.empty(SHAPE, device="meta", dtype=torch.bfloat16)
        out = shaper.shape(latents, -1)
        assert shaper.applied_steps == [-1]
        assert (out.device.type, out.dtype) == ("meta", torch.bfloat16)


def test_through_the_wan_pipeline_with_its_published_unipc_the_next_step_starts_from_the_paste(tmp_path, monkeypatch):
    """The real backend and WanImageToVideoPipeline (tiny weights) sampling with the published UniPC
    config keeps each paste through the next step (survival as defined above: the pipeline's step from
    the pasted latents against the same step, from the same scheduler state, without the paste)."""
    import shutil

    from server_helpers import plane_scene
    from test_gen_backends_tiny import build_wan_i2v

    from bridge_server.backends.base import GenerationJob
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend, load_pipeline
    from bridge_server.backends.weights import ENV
    from bridge_server.config import Limits
    from bridge_server.inputs import parse_trajectory

    folder = build_wan_i2v(tmp_path / "w" / "diffusers-i2v" / "unipc")
    shutil.copy(PUBLISHED / SCHEDULERS["wan2.1-i2v-unipc"], folder / "scheduler" / "scheduler_config.json")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(
        json.dumps(index | {"scheduler": ["diffusers", "UniPCMultistepScheduler"]})
    )
    monkeypatch.setenv(ENV, str(tmp_path / "w"))
    # A transformer whose output does not depend on its input (proj_out: zero weight, random bias), so
    # the next step's motion is independent of the paste and what it does to the paste is the scheduler's.
    from diffusers import WanTransformer3DModel

    tr = WanTransformer3DModel.from_pretrained(folder / "transformer")
    with torch.no_grad():
        tr.proj_out.weight.zero_()
        tr.proj_out.bias.copy_(torch.randn(tr.proj_out.bias.shape, generator=torch.Generator().manual_seed(2)))
    tr.save_pretrained(folder / "transformer")

    backend = DiffusersI2VBackend()
    sc = plane_scene(48, 32, 6, step=0.25, yaw_deg=1.0)
    traj = parse_trajectory(json.dumps(sc.doc).encode(), Limits())
    params = backend.Params(model="unipc", steps=30, erode_px=2)  # the defaults: threshold 0.9
    pipe = load_pipeline(folder, "cpu", params, lambda m: None)  # the cached pipeline the job will use
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    events, states = [], []

    def hook(ev):  # the scheduler's state right after each shaping, for the counterfactual step
        events.append(ev)
        states.append(copy.deepcopy(pipe.scheduler))

    backend.shaping_hook = hook
    job = GenerationJob(traj, sc.image, sc.depth, params, tmp_path / "out.mp4")
    backend.generate(job, lambda f, m: None, lambda: False)
    survivals = []
    for i, (a, b) in enumerate(zip(events, events[1:])):
        if not a.applied or a.step < 0:
            continue
        sched = states[i + 1]  # after the step from the pasted latents: its converted model output is
        k = a.step + 1  # x0 = sample - sigma * v, so v (the same for any input here) is recovered from it
        v = (a.after - sched.model_outputs[-1]) / sched.sigmas[k]
        y0 = states[i].step(v, sched.timesteps[k], a.before).prev_sample  # the same step without the paste
        paste = a.after - a.before
        cells = paste != 0
        survivals.append(float(((b.before - y0)[cells] * paste[cells]).sum() / (paste[cells] ** 2).sum()))
    assert len(survivals) >= 3
    print("pipeline survival:", [round(r, 4) for r in survivals])
    assert 0.95 <= min(survivals) and max(survivals) <= 1.05


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_the_shaping_level_is_the_flow_sigma_of_the_latents_snr_for_every_family(name):
    """``level`` is one quantity for every scheduler: the σ of ``(1 - σ) x0 + σ ε`` with the latents'
    signal-to-noise ratio. Truth from each scheduler's own noising: DDPM ``add_noise`` of (x0=1, ε=0)
    and (x0=0, ε=1) gives the signal and noise weights; flow schedulers' sigmas are σ itself. At each
    release's default steps (Wan2.1 I2V 40, CogVideoX 50, Wan-Fun 50) the default 0.9 then pastes
    wherever σ >= 0.9, the same strength in every family."""
    sch = published_scheduler(name)
    steps = 40 if name.startswith("wan2.1-i2v") else 50
    sch.set_timesteps(steps)
    shaper = NoiseShaper(sch, torch.zeros(SHAPE), torch.ones((1, 1, *SHAPE[2:])), torch.zeros(SHAPE), 0.9)
    one, zero = torch.ones(1), torch.zeros(1)
    for k in range(steps):
        if shaper.flow:
            want = float(sch.sigmas[k])
        else:
            t = sch.timesteps[k : k + 1]
            signal, noise = float(sch.add_noise(one, zero, t)), float(sch.add_noise(zero, one, t))
            want = noise / (signal + noise)
        assert shaper.level(k) == pytest.approx(want, abs=1e-6), (name, k)
    pastes = [k for k in range(steps) if shaper.level(k) >= 0.9]
    print(f"{name}: {len(pastes)} of {steps} levels >= 0.9, down to {shaper.level(pastes[-1]):.3f}")
    assert pastes == list(range(len(pastes))) and len(pastes) >= 3
