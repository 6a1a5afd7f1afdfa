"""Scene-constrained noise shaping (training-free camera control, as in RealCam-I2V).

The warp preview of the trajectory is VAE-encoded to ``preview`` latents. Whenever the sampler's
latents sit at a normalised noise level ``t >= threshold`` (1 = pure noise, 0 = clean), they are
replaced inside the latent visibility ``mask`` by the preview noised to that same level:
``x <- m * noised(preview, t) + (1 - m) * x``. Latents are shaped once before the first step (at
the first timestep's level) and after every scheduler step (at the next timestep's level, which
is where the latents then are); after the last step nothing is shaped.

Noising: flow-matching schedulers (``sigmas``, no ``alphas_cumprod``, or ``use_flow_sigmas``)
use ``(1 - sigma) * x0 + sigma * noise`` with ``t = sigma``; DDPM-family schedulers use their own
``add_noise`` (``sqrt(a) x0 + sqrt(1 - a) noise``, ``a = alphas_cumprod[timestep]``) with ``t`` the
σ of the flow interpolation of the same signal-to-noise ratio, ``sqrt(1 - a) / (sqrt(a) + sqrt(1 - a))``
(divide the DDPM latents by ``sqrt(a) + sqrt(1 - a)``: the flow form). So ``threshold`` means the same
for every family: shape while the latents' noise level σ is at least it. The noise is fixed per job (the
initial latent noise), so the shaped region follows one consistent noise sample.

Surviving the scheduler: a multistep predictor-corrector (UniPC, which Wan's published folders
ship) starts each step by *correcting* the latents it is given: it rebuilds them from its stored
previous sample (``last_sample``) and model outputs, which throws a paste away (1-3% of it
survives the next step). After a paste the stored sample no longer describes the latents, so the
shaper drops it (UniPC then skips the corrector for that one step, as it does on its first step;
its predictor history is kept). Flow-matching Euler and DDIM have no such state and keep the paste.

Devices: the paste is computed on the latents' device and in their dtype, wherever the preview,
noise and mask were made (``cpu_offload`` encodes the preview wherever the VAE was).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ShapingEvent:
    """One shaping opportunity: ``step`` = -1 before the first step, else the step just taken."""

    step: int
    t: float
    applied: bool
    before: torch.Tensor
    after: torch.Tensor
    target: torch.Tensor | None  # the noised preview (None when not applied)


def is_flow_matching(scheduler) -> bool:
    cfg = scheduler.config
    if getattr(cfg, "use_flow_sigmas", False) or "FlowMatch" in type(scheduler).__name__:
        return True
    return hasattr(scheduler, "sigmas") and not hasattr(scheduler, "alphas_cumprod")


def latent_mask(visible: np.ndarray, erode_px: int, spatial: int, temporal: int) -> np.ndarray:
    """(F', h, w) float mask of latent cells whose pixels are all visible after erosion.

    ``visible`` is (F, H, W) bool with F = temporal * (F' - 1) + 1 (causal video VAEs: latent 0 is
    frame 0, latent j >= 1 covers frames temporal*(j-1)+1 .. temporal*j) and H, W multiples of
    ``spatial``. Latent 0 is all ones: it comes from the real conditioning image.
    """
    F, H, W = visible.shape
    if (F - 1) % temporal or H % spatial or W % spatial:
        raise ValueError(f"visibility {visible.shape} does not tile into latents of {temporal}x{spatial}x{spatial}")
    m = visible.astype(np.uint8)
    if erode_px > 0:
        import cv2

        kernel = np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8)
        m = np.stack([cv2.erode(f, kernel, borderType=cv2.BORDER_REPLICATE) for f in m])
    cells = m.reshape(F, H // spatial, spatial, W // spatial, spatial).min(axis=(2, 4))
    groups = cells[1:].reshape(-1, temporal, H // spatial, W // spatial).min(axis=1)
    return np.concatenate([np.ones_like(cells[:1]), groups]).astype(np.float32)


class NoiseShaper:
    """Applies the shaping; ``hook(event)`` sees every opportunity (tests, logs).

    ``preview``, ``noise`` and ``mask`` are broadcastable to the latents (same layout as the
    pipeline's latents; ``mask`` has size 1 on the channel axis).
    """

    def __init__(
        self,
        scheduler,
        preview: torch.Tensor,
        mask: torch.Tensor,
        noise: torch.Tensor,
        threshold: float = 0.9,
        hook: Callable[[ShapingEvent], None] | None = None,
    ):
        self.scheduler, self.preview, self.mask, self.noise = scheduler, preview, mask, noise
        self.threshold, self.hook = float(threshold), hook
        self.flow = is_flow_matching(scheduler)
        self.applied_steps: list[int] = []

    def level(self, k: int) -> float:
        """Normalised noise level of the latents entering schedule index ``k`` (0 past the end)."""
        ts = self.scheduler.timesteps
        if k >= len(ts):
            return 0.0
        if self.flow:
            return float(self.scheduler.sigmas[k])
        a = min(max(float(self.scheduler.alphas_cumprod[int(ts[k])]), 0.0), 1.0)
        return (1.0 - a) ** 0.5 / (a**0.5 + (1.0 - a) ** 0.5)  # the flow σ of the same SNR

    def noised_preview(self, k: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The preview noised to the level of schedule index ``k``, in float32 on ``device``."""
        x0 = self.preview.to(device, torch.float32)
        eps = self.noise.to(device, torch.float32)
        if self.flow:
            s = self.scheduler.sigmas[k].to(device, torch.float32)
            return (1.0 - s) * x0 + s * eps
        t = self.scheduler.timesteps[k : k + 1].to(device)
        return self.scheduler.add_noise(x0, eps, t)

    def shape(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        """Shape ``latents`` that have just left step ``step`` (-1: the initial latents)."""
        k = step + 1
        t = self.level(k)
        applied = k < len(self.scheduler.timesteps) and t >= self.threshold
        target = None
        out = latents
        if applied:
            target = self.noised_preview(k, latents.device).to(latents.dtype)
            m = self.mask.to(latents.device, latents.dtype)
            out = m * target + (1.0 - m) * latents
            self.applied_steps.append(step)
            if getattr(self.scheduler, "last_sample", None) is not None:
                self.scheduler.last_sample = None  # UniPC: no corrector from the pre-paste sample
        if self.hook is not None:
            self.hook(ShapingEvent(step, t, applied, latents, out, target))
        return out

    def callback(self, pipe, step: int, timestep, kwargs: dict) -> dict:
        """``callback_on_step_end`` for diffusers pipelines (needs ``latents`` in the tensor inputs)."""
        kwargs["latents"] = self.shape(kwargs["latents"], step)
        return kwargs
