"""Encoder–decoder from diffraction amplitudes to complex object patches.

Each pattern of a group is mapped independently with shared weights: ``(B, C, N, N)`` amplitudes
→ ``(B, C, N, N)`` complex patches. The gridsize coupling is the overlap constraint of
:mod:`ptycho_nb.model.overlap`, applied after the network, so a model trained with any gridsize
reconstructs any scan pattern by pattern.

Input normalisation: ``x = log1p(diffraction / input_scale)`` with ``input_scale`` a fixed statistic
of the training data (the mean amplitude, see :func:`ptycho_nb.model.scaling_statistics`), so the
network sees O(1) values whatever the photon count. GroupNorm (not BatchNorm: its running
statistics hurt inference). Separate amplitude and phase heads with bounded
activations: amplitude ``sigmoid`` (or the configured activation), phase ``π·tanh``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from ..config.canonical import AMP_ACTIVATIONS

__all__ = ["PtychoNet", "amp_activation"]


def amp_activation(name: str, x: torch.Tensor) -> torch.Tensor:
    """The amplitude output activation ``name`` applied to ``x``.

    'sigmoid' is bounded in (0, 1); 'softplus', 'swish' and 'relu' are clamped to [0, 2] so the
    amplitude stays bounded and non-negative whichever is chosen (a transmission above 2 is not
    physical for a thin object; the intensity scale absorbs the overall level).
    """
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "softplus":
        y = F.softplus(x)
    elif name == "swish":
        y = F.silu(x)
    elif name == "relu":
        y = F.relu(x)
    else:
        raise ValueError(f"amp_activation: expected one of {AMP_ACTIVATIONS}, got {name!r}")
    return torch.clamp(y, 0.0, 2.0)


def _groups(ch: int) -> int:
    for g in (8, 4, 2):
        if ch % g == 0:
            return g
    return 1


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
            nn.GroupNorm(_groups(cout), cout),
            nn.SiLU(),
        )


class _Up(nn.Module):
    """×2 nearest upsampling + conv block (+ optional skip concat)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = _ConvBlock(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Decoder(nn.Module):
    def __init__(self, widths: list[int], out_ch: int = 1) -> None:
        super().__init__()
        self.ups = nn.ModuleList(_Up(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Conv2d(widths[-1], out_ch, 3, padding=1)
        # Start from a flat object (phase 0, mid-range amplitude), where the physics gradient is
        # informative, rather than from a random texture.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for up in self.ups:
            x = up(x)
        return self.out(x)


class PtychoNet(nn.Module):
    """Diffraction amplitudes ``(B, C, N, N)`` → complex patches ``(B, C, N, N)``.

    Parameters
    ----------
    N : int
        Pattern side (even, divisible by 2**depth).
    n_filters_scale : int
        Width multiplier: the first stage has ``8 * n_filters_scale`` channels, doubling per
        down-sampling stage up to ``8 * n_filters_scale * 4``.
    input_scale : float
        Fixed input statistic (mean training amplitude); inputs are ``log1p(x / input_scale)``.
    amp_activation : str
        Amplitude head activation (see :func:`amp_activation`).
    depth : int
        Number of stride-2 stages (bottleneck resolution ``N / 2**depth``).
    smoothing_sigma : float
        Gaussian smoothing (px) of the predicted complex patch; 0 = none.
    bottleneck_fc : bool
        A residual fully connected layer at the bottleneck (global mixing).
    input_bin : int
        Bin the input pattern ``input_bin``×``input_bin`` (RMS of the bin's amplitudes) before the encoder:
        a probe confined to N/2 oversamples the pattern 2×, so binning by 2 loses little.
    core : bool
        Predict only the central N/2×N/2 of the patch (where a probe confined to N/2 lights
        the object); the border continues the edge values (replicate padding).
    cond_channels : int
        Extra input channels that condition the prediction (e.g. features of the probe), given
        per sample to :meth:`forward` and shared by the C patterns of a group.
    departure : bool
        With ``cond``: the data channel is the pattern's departure from the first conditioning
        channel (the normalised input minus it; for a ``probe_input`` model, the log-ratio of the
        pattern to the probe's own far field), so what varies from pattern to pattern is not
        buried under what the whole scan shares. Without it a probe-conditioned network trained
        on varied scans collapsed to one output (README, "Models that generalise").
    physics_steps : int
        > 0: the network also reads a per-pattern real-space estimate of the patch
        (:func:`ptycho_nb.physics.single_pattern.pattern_estimate`, that many ePIE steps with the
        known probe, computed by the caller — see :meth:`PINNModule.network_patches
        <ptycho_nb.model.lightning_module.PINNModule.network_patches>` — and given to
        :meth:`forward` as ``estimate``), two more input channels (real part − 1, imaginary part
        of the estimate divided by its flat start). The number is recorded so a loaded network
        is fed the same estimate.
    context_patterns : int
        With ``physics_steps``: how many patterns' estimates each pattern reads — 1 (its own, two
        channels as above) or S > 1: its own and those of S − 1 neighbours, each shifted onto the
        pattern's frame (:func:`ptycho_nb.model.context.group_context`), three channels per
        pattern (real part − 1 and imaginary part, both weighted by where that pattern's probe
        lights, and the weight): overlapping neighbours see what one pattern alone cannot pin
        down (README, "Models that generalise"). Each pattern still goes through the network once.
    """

    def __init__(self, N: int = 64, n_filters_scale: int = 2, input_scale: float = 1.0,
                 amp_activation: str = "sigmoid", depth: int = 3, smoothing_sigma: float = 0.0,
                 bottleneck_fc: bool = True, input_bin: int = 1, core: bool = False,
                 cond_channels: int = 0, departure: bool = False, physics_steps: int = 0,
                 context_patterns: int = 1) -> None:
        super().__init__()
        if input_bin not in (1, 2, 4) or N % input_bin:
            raise ValueError(f"input_bin: expected 1, 2 or 4 dividing N={N}, got {input_bin!r}")
        in_res = N // input_bin
        out_res = N // 2 if core else N
        if in_res % (2 ** depth):
            raise ValueError(f"N: expected N / input_bin to be a multiple of 2**depth = {2 ** depth}, got {in_res}")
        if amp_activation not in AMP_ACTIVATIONS:
            raise ValueError(f"amp_activation: expected one of {AMP_ACTIVATIONS}, got {amp_activation!r}")
        if not (input_scale > 0 and math.isfinite(input_scale)):
            raise ValueError(f"input_scale: expected a positive finite float, got {input_scale!r}")
        self.N = int(N)
        self.input_bin = int(input_bin)
        self.core = bool(core)
        self.cond_channels = int(cond_channels)
        if departure and not self.cond_channels:
            raise ValueError("departure: needs cond_channels > 0 (the departure is from the first one)")
        self.departure = bool(departure)
        if isinstance(physics_steps, bool) or not isinstance(physics_steps, int) or physics_steps < 0:
            raise ValueError(f"physics_steps: expected a non-negative int, got {physics_steps!r}")
        self.physics_steps = int(physics_steps)
        if isinstance(context_patterns, bool) or not isinstance(context_patterns, int) or context_patterns < 1:
            raise ValueError(f"context_patterns: expected a positive int, got {context_patterns!r}")
        if math.isqrt(context_patterns) ** 2 != context_patterns:
            raise ValueError(f"context_patterns: expected a square (gridsize²: 1, 4, 9, …), got {context_patterns}")
        if context_patterns > 1 and not self.physics_steps:
            raise ValueError("context_patterns: reading neighbours' estimates needs physics_steps > 0")
        self.context_patterns = int(context_patterns)
        self._in_res = in_res
        self.amp_activation = amp_activation
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))
        w0 = 8 * int(n_filters_scale)
        widths = [min(w0 * 2 ** i, w0 * 4) for i in range(depth + 1)]  # e.g. 16, 32, 64, 64
        estimate_channels = 0
        if self.physics_steps:
            estimate_channels = 2 if self.context_patterns == 1 else 3 * self.context_patterns
        enc = [_ConvBlock(1 + self.cond_channels + estimate_channels, widths[0], stride=1)]
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [_ConvBlock(a, b, stride=2), _ConvBlock(b, b)]
        self.encoder = nn.Sequential(*enc)
        nb = widths[-1]
        # Global mixing at the bottleneck: far field → real space is a global transform.
        s = in_res // 2 ** depth
        self.bottleneck_fc = (nn.Sequential(nn.Flatten(), nn.Linear(nb * s * s, nb * s * s // 4), nn.SiLU(),
                                            nn.Linear(nb * s * s // 4, nb * s * s)) if bottleneck_fc else None)
        self._bshape = (nb, s, s)
        n_up = int(round(math.log2(out_res // s)))
        if s * 2 ** n_up != out_res:
            raise ValueError(f"N={N}: output side {out_res} is not bottleneck {s} times a power of 2")
        dec = list(reversed(widths))
        dec = (dec + [dec[-1]] * n_up)[: n_up + 1]
        self.amp_head = _Decoder(dec)
        self.phase_head = _Decoder(dec)
        self.smoothing_sigma = float(smoothing_sigma)
        if self.smoothing_sigma > 0:
            r = max(1, int(math.ceil(3 * self.smoothing_sigma)))
            t = torch.arange(-r, r + 1, dtype=torch.float32)
            k = torch.exp(-0.5 * (t / self.smoothing_sigma) ** 2)
            self.register_buffer("smooth_kernel", k / k.sum())
        else:
            self.smooth_kernel = None

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        k = self.smooth_kernel
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))

    def normalise(self, diffraction: torch.Tensor, input_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The network input: ``log1p(diffraction / input_scale)`` (a scale per sample when given,
        shape (B·C, 1, 1, 1), else the stored training statistic)."""
        scale = self.input_scale if input_scale is None else input_scale
        return torch.log1p(torch.clamp(diffraction, min=0) / scale)

    def _on_encoder_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(K, N, N) real or complex → (K, r, r) on the encoder's grid: the central N/2 at full
        resolution when the network predicts that core from a 2×-binned pattern, else binned like
        the pattern."""
        n = self.N
        if self._in_res == n:
            return x
        if self.core and self._in_res == n // 2:
            q = n // 4
            return x[:, q:n - q, q:n - q]
        k = n // self._in_res
        if x.is_complex():
            return torch.complex(F.avg_pool2d(x.real[:, None], k)[:, 0], F.avg_pool2d(x.imag[:, None], k)[:, 0])
        return F.avg_pool2d(x[:, None], k)[:, 0]

    def _estimate_channels(self, estimate: torch.Tensor, dtype: torch.dtype,
                           weight: torch.Tensor | None = None) -> torch.Tensor:
        """The estimate's input channels on the encoder's grid: (B·C, 2, r, r) — real part − 1 and
        imaginary part — for one pattern's estimate; (B·C, 3·S, r, r) — those two weighted, and the
        weight, per context pattern — for S > 1."""
        n = self.N
        e = self._on_encoder_grid(estimate.reshape(-1, n, n))
        if self.context_patterns == 1:
            return torch.stack([e.real - 1.0, e.imag], dim=1).to(dtype)
        w = self._on_encoder_grid(weight.reshape(-1, n, n).to(e.real.dtype))
        ch = torch.stack([(e.real - 1.0) * w, e.imag * w, w], dim=1)  # (B·C·S, 3, r, r)
        return ch.reshape(-1, 3 * self.context_patterns, *ch.shape[-2:]).to(dtype)

    def forward(self, diffraction: torch.Tensor, cond: torch.Tensor | None = None,
                input_scale: torch.Tensor | None = None, estimate: torch.Tensor | None = None,
                estimate_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Complex patches (B, C, N, N) of diffraction amplitudes (B, C, N, N).

        ``cond`` (B, cond_channels, N, N) conditions every pattern of sample b; ``input_scale``
        (B,) replaces the stored input statistic per sample (e.g. a scan's mean amplitude);
        ``estimate`` (B, C, N, N) complex is each pattern's normalised physics estimate (needed
        exactly when ``physics_steps`` > 0); with ``context_patterns`` S > 1 it is (B, C, S, N, N),
        the estimates of each pattern's context on its frame (its own first), and
        ``estimate_weight`` (B, C, S, N, N) real says where each is lit.
        """
        if diffraction.ndim != 4 or diffraction.shape[-2:] != (self.N, self.N):
            raise ValueError(f"diffraction: expected (B, C, {self.N}, {self.N}), got {tuple(diffraction.shape)}")
        b, c, n, _ = diffraction.shape
        if (cond is None) != (self.cond_channels == 0) or (
                cond is not None and tuple(cond.shape) != (b, self.cond_channels, n, n)):
            raise ValueError(f"cond: expected ({b}, {self.cond_channels}, {n}, {n})"
                             f"{' (this network is conditioned)' if self.cond_channels else ' or None'}, "
                             f"got {None if cond is None else tuple(cond.shape)}")
        want = (b, c, n, n) if self.context_patterns == 1 else (b, c, self.context_patterns, n, n)
        if (estimate is None) != (self.physics_steps == 0) or (
                estimate is not None and tuple(estimate.shape) != want):
            raise ValueError(f"estimate: expected complex {want}"
                             f"{' (this network reads a physics estimate)' if self.physics_steps else ' or None'}, "
                             f"got {None if estimate is None else tuple(estimate.shape)}")
        if self.context_patterns > 1 and (estimate_weight is None or tuple(estimate_weight.shape) != want):
            raise ValueError(f"estimate_weight: expected real {want} (this network reads "
                             f"{self.context_patterns} patterns' estimates), got "
                             f"{None if estimate_weight is None else tuple(estimate_weight.shape)}")
        # Follow the weights' dtype (float32, or float64 under precision='64-true').
        dtype = next(self.parameters()).dtype
        x = diffraction.reshape(b * c, 1, n, n).to(dtype)
        if self.input_bin > 1:  # bin intensities; RMS amplitude keeps the input_scale statistic valid
            x = torch.sqrt(F.avg_pool2d(x ** 2, self.input_bin))
        scale = None
        if input_scale is not None:
            scale = input_scale.to(dtype).reshape(b, 1).expand(b, c).reshape(b * c, 1, 1, 1)
        x = self.normalise(x, scale)
        if cond is not None:
            k = cond.to(dtype)
            if self.input_bin > 1:
                k = F.avg_pool2d(k, self.input_bin)
            k = k.repeat_interleave(c, dim=0)
            if self.departure:
                x = x - k[:, :1]
            x = torch.cat([x, k], dim=1)
        if estimate is not None:
            x = torch.cat([x, self._estimate_channels(estimate, dtype, estimate_weight)], dim=1)
        z = self.encoder(x)
        if self.bottleneck_fc is not None:
            z = z + self.bottleneck_fc(z).view(-1, *self._bshape)
        amp = amp_activation(self.amp_activation, self.amp_head(z))
        phase = math.pi * torch.tanh(self.phase_head(z))
        if self.core:  # central N/2 predicted; the rest continues the edge values
            q = self.N // 4
            amp = F.pad(amp, (q, q, q, q), mode="replicate")
            phase = F.pad(phase, (q, q, q, q), mode="replicate")
        obj = torch.polar(amp, phase)
        if self.smooth_kernel is not None:
            re = self._smooth(obj.real)
            im = self._smooth(obj.imag)
            obj = torch.complex(re, im)
        return obj.reshape(b, c, n, n)
