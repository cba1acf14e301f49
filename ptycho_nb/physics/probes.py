"""Synthetic probes (numpy): complex64 (N, N), normalised to unit total intensity sum|P|² = 1.

Lengths are in pixels of the probe (= object) plane. Propagation distances are given as the
product ``lam_z = wavelength · distance`` in pixel² units, which is all paraxial (Fresnel)
propagation needs: the angular-spectrum transfer function is ``exp(-i π lam_z (fx² + fy²))`` with
spatial frequencies fx, fy in cycles per pixel.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.special import erfc

__all__ = ["disc_probe", "defocused_pupil_probe", "gaussian_probe", "zone_plate_probe", "make_probe",
           "canonical_probe_kind", "probe_diameter", "probe_from_patterns", "gaussian_guess",
           "twin_distance", "fresnel_propagate", "PROBE_KINDS"]


def _check_n(N: int) -> None:
    if not isinstance(N, (int, np.integer)) or N < 4 or N % 2:
        raise ValueError(f"N: expected an even int >= 4, got {N!r}")


def _radius_grid(N: int) -> np.ndarray:
    """Distance (pixels) of each pixel from the centre pixel (N//2, N//2), shape (N, N)."""
    c = np.arange(N) - N // 2
    return np.hypot(c[:, None], c[None, :])


def _normalise(p: np.ndarray) -> np.ndarray:
    return (p / np.sqrt(np.sum(np.abs(p) ** 2))).astype(np.complex64)


def _guard_window(N: int) -> np.ndarray:
    """Smooth super-Gaussian guard aperture (≈1 inside radius 0.38 N, ≈0 at the window edge).

    FFT propagation is periodic; the guard removes the faint fringes that would otherwise wrap
    around and keeps the probe ~0 at the edges of the N×N window.
    """
    r = _radius_grid(N) / (0.42 * N)
    return np.exp(-(r ** 12))


def _disc_radius(N: int, radius: float | None) -> float:
    """The aperture radius (px) of a disc probe, default ``N/5``, checked against the window."""
    _check_n(N)
    radius = N / 5 if radius is None else radius
    if not (0 < radius < N / 2):
        raise ValueError(f"radius: expected 0 < radius < N/2 = {N / 2}, got {radius!r}")
    return radius


def fresnel_propagate(field: np.ndarray, lam_z: float) -> np.ndarray:
    """Paraxial angular-spectrum propagation of a centred (N, N) field by ``lam_z`` (pixel²)."""
    n = field.shape[-1]
    f = np.fft.fftfreq(n)  # cycles / pixel
    h = np.exp(-1j * np.pi * lam_z * (f[:, None] ** 2 + f[None, :] ** 2))
    # ifftshift/fftshift keep the field centred on pixel N//2 through the FFT pair.
    return np.fft.fftshift(np.fft.ifft2(np.fft.fft2(np.fft.ifftshift(field)) * h))


def disc_probe(N: int = 64, radius: float | None = None, curvature: float = 0.01,
               softness: float = 1.0, lam_z: float = 60.0) -> np.ndarray:
    """Soft-edged circular aperture with defocus curvature, Fresnel-propagated (ring structure).

    Parameters
    ----------
    N : int
        Window side (pixels, even).
    radius : float, optional
        Aperture radius in pixels; default ``N/5`` (illuminated diameter ≈ 0.4 N).
    curvature : float
        Quadratic phase ``curvature · r²`` (rad/pixel²) — a slightly converging/diverging wave.
    softness : float
        Edge width of the aperture (pixels, > 0): ``0.5·erfc((r − radius)/softness)``.
    lam_z : float
        Wavelength × propagation distance (pixel²) from the aperture to the sample plane; gives
        Fresnel edge rings (Fresnel number ``radius²/lam_z``). 0 = no propagation.

    Returns
    -------
    ndarray, (N, N) complex64, sum|P|² = 1, centred on pixel (N//2, N//2).
    """
    radius = _disc_radius(N, radius)
    if not (softness > 0):
        raise ValueError(f"softness: expected > 0 pixels, got {softness!r}")
    if not (lam_z >= 0):
        raise ValueError(f"lam_z: expected >= 0 (pixel²), got {lam_z!r}")
    r = _radius_grid(N)
    p = 0.5 * erfc((r - radius) / softness) * np.exp(1j * curvature * r ** 2)
    if lam_z > 0:
        p = fresnel_propagate(p, lam_z)
    return _normalise(p * _guard_window(N))


# Edge phase (rad) of the default defocused pupil: inside VariedSpec.defocus's default 1–12 rad,
# well past the ~1.6 rad of the near-focus disc_probe default.
_DEFOCUS_EDGE_PHASE = 6.0


def defocused_pupil_probe(N: int = 64, radius: float | None = None, curvature: float | None = None,
                          softness: float = 1.0, lam_z: float | None = None) -> np.ndarray:
    """The aperture of :func:`disc_probe` with a strong defocus: a broad, strongly curved beam.

    Same parameters as :func:`disc_probe`; only the defaults differ, so a disc's parameters
    rebuild the same probe under either name.

    Parameters
    ----------
    N : int
        Window side (pixels, even).
    radius : float, optional
        Aperture radius in pixels; default ``N/5``.
    curvature : float, optional
        Quadratic phase (rad/pixel²); default 6 rad at the aperture edge, ``6 / radius²``.
    softness : float
        Edge width of the aperture (pixels, > 0).
    lam_z : float, optional
        Wavelength × propagation distance (pixel²); default ``radius²/8`` (Fresnel number 8).
        A Fresnel number of at least ``2φ/π`` for an edge phase φ keeps the spread the defocus
        adds to about half the radius; 8 keeps the default beam (diameter ≈ 0.48 N) inside the
        window.

    Returns
    -------
    ndarray, (N, N) complex64, sum|P|² = 1, centred on pixel (N//2, N//2).
    """
    radius = _disc_radius(N, radius)
    curvature = _DEFOCUS_EDGE_PHASE / radius ** 2 if curvature is None else curvature
    lam_z = radius ** 2 / 8.0 if lam_z is None else lam_z
    return disc_probe(N, radius=radius, curvature=curvature, softness=softness, lam_z=lam_z)


def gaussian_probe(N: int = 64, sigma: float | None = None, curvature: float = 0.0) -> np.ndarray:
    """Gaussian beam ``exp(-r²/(2σ²)) · exp(i · curvature · r²)``.

    Parameters
    ----------
    N : int — window side (pixels, even)
    sigma : float, optional — amplitude standard deviation in pixels; default ``N/8``
    curvature : float — quadratic phase (rad/pixel²)

    Returns
    -------
    ndarray, (N, N) complex64, sum|P|² = 1.
    """
    _check_n(N)
    sigma = N / 8 if sigma is None else sigma
    if not (0 < sigma < N):
        raise ValueError(f"sigma: expected 0 < sigma < N = {N}, got {sigma!r}")
    r = _radius_grid(N)
    return _normalise(np.exp(-r ** 2 / (2 * sigma ** 2)) * np.exp(1j * curvature * r ** 2))


def zone_plate_probe(N: int = 64, outer_radius: float | None = None, stop_fraction: float = 0.35,
                     lam_z: float = 48.0, softness: float = 0.75) -> np.ndarray:
    """Defocused Fresnel zone-plate (FZP) focus: annular pupil → focus → defocused plane.

    The lens pupil (zone plate with central stop) is modelled in the far field of the sample
    plane: an annulus of spatial frequencies with outer radius ``outer_radius`` (frequency pixels of
    the N×N grid). Its inverse FFT is the in-focus spot; a defocus of ``lam_z`` (wavelength ×
    distance, pixel²) spreads it into the familiar ring-shaped, phase-curved beam of radius
    ≈ ``lam_z · outer_radius / N``.

    Parameters
    ----------
    N : int — window side (pixels, even)
    outer_radius : float, optional — pupil radius in frequency pixels; default ``N/4``
    stop_fraction : float — central-stop radius as a fraction of ``outer_radius``, in [0, 1)
    lam_z : float — defocus, wavelength × distance (pixel²), may be negative (before focus)
    softness : float — pupil edge width (frequency pixels, > 0)

    Returns
    -------
    ndarray, (N, N) complex64, sum|P|² = 1.
    """
    _check_n(N)
    outer_radius = N / 4 if outer_radius is None else outer_radius
    if not (0 < outer_radius <= N / 2):
        raise ValueError(f"outer_radius: expected 0 < outer_radius <= N/2 = {N / 2}, got {outer_radius!r}")
    if not (0 <= stop_fraction < 1):
        raise ValueError(f"stop_fraction: expected in [0, 1), got {stop_fraction!r}")
    if not (softness > 0):
        raise ValueError(f"softness: expected > 0, got {softness!r}")
    q = _radius_grid(N)  # frequency-pixel radius in the centred pupil
    pupil = (0.5 * erfc((q - outer_radius) / softness)
             * (1 - 0.5 * erfc((q - stop_fraction * outer_radius) / softness)))
    fq = q / N  # cycles / pixel
    pupil = pupil * np.exp(-1j * np.pi * lam_z * fq ** 2)  # defocus in the pupil
    p = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil)))
    return _normalise(p * _guard_window(N))


PROBE_KINDS: dict[str, Callable[..., np.ndarray]] = {
    "disc": disc_probe,
    "defocused_pupil": defocused_pupil_probe,
    "zone_plate": zone_plate_probe,
    "gaussian": gaussian_probe,
}
"""The one vocabulary of probe kinds: name → builder ``(N, **kwargs) → (N, N) complex64``.

:func:`make_probe` and so :func:`~ptycho_nb.physics.simulate` (``probe_kind``), the CLI's
``--probe-kind`` choices and ``VariedSpec.probe_families`` (whose :data:`PROBE_FAMILIES
<ptycho_nb.physics.varied.PROBE_FAMILIES>` is ``tuple(PROBE_KINDS)``) all take their names
from it. The kinds: an aperture near focus (a weak curvature phase, Fresnel edge rings); the
same aperture with a strong defocus (quadratic) phase; a defocused zone-plate focus (annular
pupil, ring-shaped beam); a Gaussian beam (with curvature, if asked).
"""
_ALIASES = {"airy": "disc", "defocused_disc": "disc", "gauss": "gaussian", "fzp": "zone_plate",
            "zoneplate": "zone_plate"}


def canonical_probe_kind(kind: str) -> str:
    """The :data:`PROBE_KINDS` name of ``kind`` (any case, or an alias such as 'fzp'); ValueError
    naming the kinds when it is none of them."""
    key = _ALIASES.get(str(kind).lower(), str(kind).lower())
    if key not in PROBE_KINDS:
        raise ValueError(f"kind: unknown probe kind {kind!r}; expected one of {sorted(PROBE_KINDS)}")
    return key


def make_probe(kind: str = "disc", N: int = 64, **kw: Any) -> np.ndarray:
    """Build a probe by name, a key of :data:`PROBE_KINDS` (or an alias); ``kw`` go to its builder.

    Returns (N, N) complex64 with sum|P|² = 1.
    """
    key = canonical_probe_kind(kind)
    try:
        return PROBE_KINDS[key](N, **kw)
    except TypeError as exc:  # unexpected keyword → a ValueError naming it
        raise ValueError(f"make_probe({key!r}): {exc}") from None


def probe_diameter(probe: np.ndarray) -> float:
    """Effective illuminated diameter (pixels): ``2·√2 · r_rms`` of the intensity (summed over modes).

    Exact for a flat disc (r_rms = R/√2); used to turn an overlap into a scan step.
    """
    p = np.asarray(probe)
    inten = np.abs(p) ** 2
    if inten.ndim == 3:
        inten = inten.sum(0)
    if inten.ndim != 2 or inten.sum() <= 0:
        raise ValueError(f"probe: expected a non-zero (N, N) or (K, N, N) array, got shape {p.shape}")
    n0, n1 = inten.shape
    yy, xx = np.mgrid[:n0, :n1].astype(np.float64)
    tot = inten.sum()
    cy, cx = (inten * yy).sum() / tot, (inten * xx).sum() / tot
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2)
    return float(2 * np.sqrt(2) * np.sqrt((inten * r2).sum() / tot))


def twin_distance(probe: np.ndarray) -> float:
    """How far a probe is from being blind to the twin image, in [0, 1] (0 = blind).

    Lit by a probe with ``P(r) = e^{iθ}·conj(P(−r))`` — any centro-symmetric probe with a flat
    phase, e.g. an in-focus disc or an uncurved Gaussian beam — an object patch ``O(r)`` and its
    twin ``conj(O(−r))`` give the same diffraction pattern, so no network that reads one pattern
    at a time can tell them apart (only the overlap between patterns can). Returns
    ``sqrt(1 − |Σ P(r)·P(−r)| / Σ|P|²)``, the distance of P from its twin-flipped conjugate
    after the best global phase, relative to P; for modes, the mean weighted by their power.
    Real beams carry some phase (defocus, aberrations): an aperture with a defocus phase of
    1 rad at its edge gives about 0.4, 3 rad about 0.9; a Gaussian beam with 1 rad at its
    radius about 0.5.

    Parameters
    ----------
    probe : (N, N) or (K, N, N) complex array, centred on pixel (N//2, N//2)
    """
    p = np.asarray(probe)
    if p.ndim not in (2, 3) or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"probe: expected an (N, N) or (K, N, N) array, got shape {p.shape}")
    modes = (p if p.ndim == 3 else p[None]).astype(np.complex128)
    # P(−r) about the centre pixel N//2: flip, then roll by one so index N//2 maps to itself.
    flipped = np.roll(modes[:, ::-1, ::-1], 1, axis=(-2, -1))
    power = np.sum(np.abs(modes) ** 2, axis=(-2, -1))
    if not np.all(np.isfinite(power)) or power.sum() <= 0:
        raise ValueError("probe: expected a finite, non-zero array")
    overlap = np.abs(np.sum(modes * flipped, axis=(-2, -1))) / np.maximum(power, 1e-300)
    d = np.sqrt(np.clip(1.0 - overlap, 0.0, 1.0))
    return float(np.sum(d * power) / power.sum())


def gaussian_guess(probe: np.ndarray) -> np.ndarray:
    """A rough probe guess: a flat-phase Gaussian of about the probe's size, at its power.

    What a beamline knows of its beam without a reconstruction (its size and flux), as the start
    of probe refinement (``refine_probe``) in simulation studies: amplitude σ = a quarter of
    :func:`probe_diameter` (so the guess's own diameter is about 0.7 of the probe's),
    ``sum|guess|² = sum|probe|²``.

    Parameters
    ----------
    probe : (N, N) complex array

    Returns
    -------
    ndarray, (N, N) complex64
    """
    p = np.asarray(probe)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"probe: expected a square (N, N) array, got shape {p.shape}")
    g = gaussian_probe(p.shape[-1], sigma=probe_diameter(p) / 4.0)
    power = float(np.sum(np.abs(p) ** 2))
    return (g * np.sqrt(power / np.sum(np.abs(g) ** 2))).astype(np.complex64)


def probe_from_patterns(diffraction: Any, like: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Two probe starts read from a scan's mean diffraction pattern, for probe refinement.

    Averaged over scan positions, a pattern is about ``|F{P}|²`` (blurred by the object), so
    ``sqrt(mean pattern)`` is the probe's far-field amplitude, which a rough guess (a Gaussian
    of about the right size) usually misses entirely (a zone plate's annulus, a pinhole's
    rings). Its phase is not measured: each start puts a defocus on it, one of each sign, whose
    size gives the probe ``like``'s diameter (:func:`probe_diameter`); the data then tell the two
    apart (``ptycho_nb.refine.probe_start.choose_probe_start``).

    Parameters
    ----------
    diffraction : (M, N, N) measured amplitudes (sqrt counts), DC at pixel (N//2, N//2)
    like : complex (N, N) or (K, N, N)
        The rough guess: the starts take its diameter and its total power sum|P|² (the scan's
        units).
    chunk : int
        Patterns summed at a time (memory stays O(chunk·N²)).

    Returns
    -------
    (plus, minus) : complex64 (N, N)
        The starts with defocus ``+lam_z`` and ``-lam_z`` (the same array twice when the
        focused start is already as large as ``like``).
    """
    d = np.asarray(diffraction)
    guess = np.asarray(like)
    if d.ndim != 3 or d.shape[-1] != d.shape[-2] or d.shape[0] < 1:
        raise ValueError(f"diffraction: expected (M, N, N) amplitudes, got shape {d.shape}")
    n = d.shape[-1]
    if guess.shape[-2:] != (n, n):
        raise ValueError(f"like: expected a probe of {n}x{n} (the patterns' size), got shape {guess.shape}")
    power = float(np.sum(np.abs(guess) ** 2))
    target = probe_diameter(guess)
    mean = np.zeros((n, n), np.float64)
    for i in range(0, d.shape[0], chunk):
        mean += np.square(d[i:i + chunk], dtype=np.float64).sum(axis=0)
    if not (np.all(np.isfinite(mean)) and mean.sum() > 0):
        raise ValueError("diffraction: the mean pattern is not finite and positive; no probe can be read from it")
    amp = np.sqrt(mean / d.shape[0])
    fq2 = (_radius_grid(n) / n) ** 2  # cycles² / pixel², centred like the patterns

    def start(lam_z: float) -> np.ndarray:
        p = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(amp * np.exp(-1j * np.pi * lam_z * fq2))))
        return (p * np.sqrt(power / np.sum(np.abs(p) ** 2))).astype(np.complex64)

    # Coarse then fine search of the defocus whose start is as large as the guess. A defocus
    # beyond n²/2 pixel² wraps a beam around the n×n window.
    grid = np.linspace(0.0, n * n / 2, 257)
    best = grid[int(np.argmin([abs(probe_diameter(start(z)) - target) for z in grid]))]
    fine = np.linspace(max(best - grid[1], 0.0), best + grid[1], 33)
    lam_z = float(fine[int(np.argmin([abs(probe_diameter(start(z)) - target) for z in fine]))])
    return start(lam_z), start(-lam_z)
