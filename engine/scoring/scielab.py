"""S-CIELAB: CIELAB colour difference after a spatial filter matched to human vision.

After X. Zhang and B. A. Wandell, "A spatial extension of CIELAB for digital color-image
reproduction", Journal of the SID 5(1), 1997, in the form of Zhang's reference MATLAB
code (`scielab.m`, S-CIELAB distribution, Stanford, last modified 1998; ISETCam's
`metrics/scielab` keeps a later descendant). Per image:

  1. straight-alpha sRGB composited over white in 8-bit sRGB values (as the kernels'
     `_luma_on_white` does), decoded to linear light (IEC 61966-2-1);
  2. linear sRGB to CIE 1931 XYZ, then to the Poirson-Wandell opponent channels
     (luminance, red-green, blue-yellow; `XYZ_TO_OPPONENT`);
  3. each channel convolved with its sum of Gaussians (`FILTERS`: the spreads in degrees
     of visual angle and the weights of the reference code), sampled at the viewing
     condition's samples per degree;
  4. back to XYZ, to CIELAB with the D65 white, and the CIE 1976 Delta E*ab per pixel
     between the two filtered images.

The filter blurs what the eye does not resolve at that distance: grain and noise average
out and leave little difference, a glyph edge's other antialiasing spreads into a faint
halo (a lower mean than per-pixel CIEDE2000, not none), while a change of colour over an
area survives the blur whole. On a uniform area the filter changes
nothing, so there S-CIELAB is plain CIELAB Delta E*ab.

Kernels, as the reference builds them (`separableFilters(sampPerDeg, 3)`):
  - each Gaussian is exp(-(2 sqrt(ln 2) x / (h - 1))^2) over an odd support of one
    degree, h its width in samples (the reference's `gauss`: `FILTERS` gives h as the full
    width at half maximum in degrees, the paper's spread times 2 sqrt(ln 2), see
    `PUBLISHED_SPREADS`), scaled to sum 1;
  - below `MIN_SAMPLES_PER_DEGREE` they are built at an integer multiple u of the rate
    that reaches it, convolved with the triangle of linear interpolation by u, and every
    u-th sample kept about the centre: filtering the image upsampled by u, then
    downsampling, in one kernel;
  - each Gaussian is separable, so a channel's 2-D filter is the sum over its Gaussians
    of weight x g(x) g(y); its spectrum is built from the Gaussians' 1-D spectra and
    applied by FFT (`_blur` says why not as row and column convolutions).
One departure: the reference normalises each Gaussian before that resampling, after
which the channels' filters sum to 0.99-1.005 (not 1) below 224 samples per degree and
tint a uniform area (at 50 samples per degree white by 0.27 Delta E*ab, a saturated
yellow by 1.3: the opponent-to-XYZ matrix amplifies unequal channel gains). Here each
resampled Gaussian is scaled to sum 1 again, so every filter sums to its weights' sum,
1, and a uniform area keeps its colour exactly, as the paper defines the metric.
tests/scoring/test_scielab.py compares both with the reference.

Borders: the image is mirrored with its edge sample repeated (half-sample symmetric),
as the reference's `pad4conv` does; unlike zeros (black in opponent space) or a wrap,
a mirror adds no edge or colour of its own. Where the kernel is wider than the image the
reference pads half the image and then zeros; here the mirror repeats, so small images
keep their borders' colour too.

Everything is torch on the tensors' device (CPU or CUDA): no host synchronisation, no
NumPy. Float32 throughout: against float64 the per-pair mean and quantile stay within
1e-4 Delta E*ab, single pixels of the map within about 1e-3 (dark ones, where L* is
steep in Y); tests/scoring/test_scielab.py bounds both.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Final

from pixgate.config import OPAQUE_ALPHA, SCIELAB_SAMPLES_PER_DEGREE

if TYPE_CHECKING:
    import torch

#: CIE 1931 XYZ (Y of white 1) to the Poirson-Wandell opponent channels: luminance,
#: red-green, blue-yellow. The reference's `cmatrix('xyz2opp', 2)` (2-degree observer,
#: the one sRGB is defined with).
XYZ_TO_OPPONENT: tuple[tuple[float, float, float], ...] = (
    (0.2787336, 0.7218031, -0.1065520),
    (-0.4487736, 0.2898056, 0.0771569),
    (0.0859513, -0.5899859, 0.5011089),
)

#: Per opponent channel, its Gaussians as (full width at half maximum in degrees of visual
#: angle, weight): the reference code's parameters (`separableFilters.m`), whose weights
#: are the paper's normalised to sum 1 per channel.
FILTERS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0.05, 1.00327), (0.225, 0.114416), (7.0, -0.117686)),
    ((0.0685, 0.616725), (0.826, 0.383275)),
    ((0.0920, 0.567885), (0.6451, 0.432115)),
)

#: Zhang & Wandell (1997), table 1: per channel the weights w_i and spreads s_i (degrees)
#: of f = sum w_i k_i exp(-(x^2 + y^2) / s_i^2). The reference code's `FILTERS` are these
#: weights normalised (from one more digit: 0.9207 for 0.921) and these spreads as full
#: widths at half maximum, 2 sqrt(ln 2) s_i, rounded; kept to check `FILTERS` against.
PUBLISHED_WEIGHTS: tuple[tuple[float, ...], ...] = ((0.921, 0.105, -0.108), (0.531, 0.330), (0.488, 0.371))
PUBLISHED_SPREADS: tuple[tuple[float, ...], ...] = ((0.0283, 0.133, 4.336), (0.0392, 0.494), (0.0536, 0.386))

#: The reference builds its kernels at no fewer samples per degree than this (its
#: `minSAMPPERDEG`), resampling them to the image's rate below it.
MIN_SAMPLES_PER_DEGREE = 224

# Linear sRGB to CIE XYZ (IEC 61966-2-1), and the D65 white: the kernels' values.
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0


#: Per opponent channel, (weights, Gaussians): see `gaussians`.
Kernels = tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]


@functools.cache
def gaussians(samples_per_degree: float) -> Kernels:
    """The separable kernels at a number of samples per degree, as the reference builds
    them (see the module's docstring), each resampled Gaussian scaled to sum 1.

    Returns:
        Per opponent channel, (weights, Gaussians): its weights, and its 1-D Gaussians
        flattened row after row (one row per weight, all rows of one odd length).
    """
    import torch

    if not samples_per_degree > 0 or not math.isfinite(samples_per_degree):
        raise ValueError(f"samples_per_degree must be a positive number; got {samples_per_degree!r}")
    up = math.ceil(MIN_SAMPLES_PER_DEGREE / samples_per_degree) if samples_per_degree < MIN_SAMPLES_PER_DEGREE else 1
    rate = samples_per_degree * up
    width = math.ceil(rate / 2) * 2 - 1
    x = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
    triangle = torch.cat([torch.arange(1, up + 1), torch.arange(up - 1, 0, -1)]).to(torch.float64) / up
    centre = (width - 1) // 2
    keep = torch.cat([torch.arange(centre % up, centre, up), torch.arange(centre, width, up)])
    out = []
    for channel in FILTERS:
        rows = []
        for half_width, _ in channel:
            g = torch.exp(-((2.0 * math.sqrt(math.log(2.0)) / (half_width * rate - 1.0) * x) ** 2))
            g = g / g.sum()
            if up > 1:
                # The reference's conv2(k, triangle, 'same'): the centred `width` samples.
                g = torch.nn.functional.conv1d(g.view(1, 1, -1), triangle.view(1, 1, -1), padding=up - 1).view(-1)
                g = g[keep]
                g = g / g.sum()
            rows.append(g)
        out.append((tuple(w for _, w in channel), tuple(torch.cat(rows).tolist())))
    return tuple(out)


def _mirror(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """`x` extended by `pad` samples at both ends of `dim`, mirrored with the edge sample
    repeated (..., 1, 0 | 0, 1, ..., n-1 | n-1, n-2, ...), and again past the far edge."""
    import torch

    n = x.shape[dim]
    if pad <= n:  # two copies, faster than a gather
        return torch.cat([x.narrow(dim, 0, pad).flip(dim), x, x.narrow(dim, n - pad, pad).flip(dim)], dim)
    i = torch.arange(-pad, n + pad, device=x.device) % (2 * n)
    return x.index_select(dim, torch.where(i >= n, 2 * n - 1 - i, i))


def fast_length(n: int) -> int:
    """The smallest length >= n with no prime factor above 5: FFTs of such lengths are
    the fastest (a prime length can take several times longer)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _blur(opponent: torch.Tensor, kernels: Kernels) -> torch.Tensor:
    """Each opponent channel (N x 3 x H x W) convolved with its sum of separable Gaussians.

    As one product of spectra per channel: the image mirrored by the kernel's half width
    on each side (so the FFT's wrap-around never reaches a kept sample), and the kernel's
    2-D spectrum built from its Gaussians' 1-D spectra (a separable kernel's spectrum is
    the outer product of its rows' and columns'). Per pixel this costs a few dozen
    operations whatever the kernel's width, where a row and a column pass of each
    Gaussian cost four times its width: with one-degree kernels of about 50 samples, the
    FFT took under half the time of `conv2d` with 1-D kernels on a CPU. Memory: one
    channel's mirrored plane, its spectrum and its inverse at a time, and the kernels'
    spectra, kept per size for small sizes (`_spectra`).
    """
    import torch

    h, w = opponent.shape[-2:]
    taps = len(kernels[0][1]) // len(kernels[0][0])
    half = taps // 2
    hp, wp = fast_length(h + 2 * half), fast_length(w + 2 * half)
    out = torch.empty_like(opponent)
    spectra = _spectra(kernels, hp, wp, opponent.dtype, opponent.device)
    for c, spectrum in enumerate(spectra):
        # Past the mirrored border, zeros up to the FFT's length (rfft2's `s`): the
        # samples kept never reach them.
        plane = _mirror(_mirror(opponent[:, c], half, 2), half, 1)
        blurred = torch.fft.irfft2(torch.fft.rfft2(plane, s=(hp, wp)).mul_(spectrum), s=(hp, wp))
        out[:, c] = blurred[:, half : half + h, half : half + w]
    return out


#: FFT sizes (samples) up to which `_spectra` keeps a size's spectra: the working size
#: of the colour columns is well under it; a full-size call of `scielab_table` on a
#: large image builds its own each time rather than holding them for the process's life.
_CACHED_FFT_SAMPLES: Final = 1 << 20


def _spectra(kernels: Kernels, hp: int, wp: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Per opponent channel, its kernel's 2-D spectrum at an FFT size of `hp` x `wp`
    (read-only: shared between calls)."""
    if hp * wp <= _CACHED_FFT_SAMPLES:
        return _cached_spectra(kernels, hp, wp, dtype, device)
    return _built_spectra(kernels, hp, wp, dtype, device)


@functools.lru_cache(maxsize=16)
def _cached_spectra(
    kernels: Kernels, hp: int, wp: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """`_built_spectra`, once per size: a batch of one size follows another."""
    return _built_spectra(kernels, hp, wp, dtype, device)


def _built_spectra(
    kernels: Kernels, hp: int, wp: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, ...]:
    import torch

    # Plain tensors even when first built inside a caller's inference mode, so a cached
    # one can serve any later caller.
    with torch.inference_mode(False), torch.no_grad():
        return _spectra_now(kernels, hp, wp, dtype, device)


def _spectra_now(
    kernels: Kernels, hp: int, wp: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, ...]:
    import torch

    taps = len(kernels[0][1]) // len(kernels[0][0])
    half = taps // 2
    spectra = []
    for weights, flat in kernels:
        g = torch.tensor(flat, dtype=dtype).view(len(weights), taps).to(device, non_blocking=True)
        wt = torch.tensor(weights, dtype=dtype).to(device, non_blocking=True)
        # Each Gaussian zero-padded to the FFT's length, its centre moved to sample 0.
        across = torch.roll(torch.nn.functional.pad(g, (0, wp - taps)), -half, dims=1)
        down = torch.roll(torch.nn.functional.pad(g, (0, hp - taps)), -half, dims=1)
        columns, rows = torch.fft.fft(down), torch.fft.rfft(across)
        spectra.append(torch.einsum("j,jy,jx->yx", wt.to(rows.dtype), columns, rows))
    return tuple(spectra)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    import torch

    # The cube root of a negative t (a blur's undershoot) is NaN, but such t take the line.
    return torch.where(t > _DELTA**3, t.pow(1.0 / 3.0), t / (3.0 * _DELTA * _DELTA) + 4.0 / 29.0)


def filtered_lab(img: torch.Tensor, *, samples_per_degree: float) -> torch.Tensor:
    """CIELAB (D65) of the S-CIELAB-filtered images.

    Args:
        img: N x H x W x 4 uint8 tensor, straight-alpha sRGB, composited over white.
        samples_per_degree: Image samples per degree of visual angle.

    Returns:
        N x 3 x H x W float32 tensor (L*, a*, b*) on the image's device.
    """
    import torch

    return _filtered_lab(img, gaussians(float(samples_per_degree)), torch.float32)


@functools.cache
def _matrices() -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]:
    """Linear sRGB to opponent, and opponent to XYZ over the white (X/Xn, Y/Yn, Z/Zn)."""
    import torch

    opponent = torch.tensor(XYZ_TO_OPPONENT, dtype=torch.float64)
    to_opponent = opponent @ torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)
    to_xyz = torch.linalg.inv(opponent) / torch.tensor(_WHITE, dtype=torch.float64).view(3, 1)
    return tuple(map(tuple, to_opponent.tolist())), tuple(map(tuple, to_xyz.tolist()))


def opponent_matrix() -> tuple[tuple[float, ...], ...]:
    """Linear sRGB to S-CIELAB's opponent channels (rows: channels, columns: R, G, B)."""
    return _matrices()[0]


def filtered_lab_of_opponent(opponent: torch.Tensor, *, samples_per_degree: float) -> torch.Tensor:
    """`filtered_lab` from the opponent planes (N x 3 x H x W, as `opponent_matrix` makes
    them from linear sRGB) instead of 8-bit pixels: for callers that decode and convert
    in a pass of their own (`pixgate_kernels.local.opponent_cpu`)."""
    if opponent.ndim != 4 or opponent.shape[1] != 3:
        raise ValueError(f"opponent must be N x 3 x H x W; got {tuple(opponent.shape)}")
    return _lab_of_opponent(opponent, gaussians(float(samples_per_degree)))


def _filtered_lab(img: torch.Tensor, kernels: Kernels, dtype: torch.dtype) -> torch.Tensor:
    """`filtered_lab` with given kernels (as `gaussians` gives them), computed in `dtype`.

    Plane by plane, with 3 x 3 matrices as Python numbers: a batched matrix product over
    three channels costs more than the nine multiply-adds, and nothing crosses to a device.
    """
    import torch

    if img.ndim != 4 or img.shape[3] != 4 or img.dtype != torch.uint8:
        raise ValueError(f"images must be N x H x W x 4 uint8; got {tuple(img.shape)} {img.dtype}")
    to_opponent = _matrices()[0]
    planes = img.permute(0, 3, 1, 2).contiguous()
    alpha = planes[:, 3].to(dtype).div_(255.0)
    white = torch.sub(1.0, alpha)
    n, _, h, w = planes.shape
    opponent = torch.zeros((n, 3, h, w), dtype=dtype, device=img.device)
    for c in range(3):
        # Over white in 8-bit sRGB values, as the kernels' `_luma_on_white`; then decoded.
        v = planes[:, c].to(dtype).div_(255.0).mul_(alpha).add_(white)
        low, dark = v / 12.92, v <= 0.04045
        v = torch.where(dark, low, v.add_(0.055).div_(1.055).pow_(2.4))
        for k in range(3):
            opponent[:, k].add_(v, alpha=to_opponent[k][c])
    del planes, alpha, white, v, low, dark
    return _lab_of_opponent(opponent, kernels)


def _lab_of_opponent(opponent: torch.Tensor, kernels: Kernels) -> torch.Tensor:
    """The opponent planes filtered, then in CIELAB (D65): N x 3 x H x W, their dtype."""
    import torch

    _, to_xyz = _matrices()
    filtered = _blur(opponent, kernels)
    del opponent
    lab = torch.empty_like(filtered)
    f = [
        _lab_f(filtered[:, 0] * m[0] + filtered[:, 1] * m[1] + filtered[:, 2] * m[2]) for m in to_xyz
    ]  # f(X/Xn), f(Y/Yn), f(Z/Zn)
    del filtered
    torch.mul(f[1], 116.0, out=lab[:, 0]).sub_(16.0)
    torch.sub(f[0], f[1], out=lab[:, 1]).mul_(500.0)
    torch.sub(f[1], f[2], out=lab[:, 2]).mul_(200.0)
    return lab


def scielab_delta_e(base: torch.Tensor, cand: torch.Tensor, *, samples_per_degree: float) -> torch.Tensor:
    """Per-pixel S-CIELAB Delta E*ab between two batches of images.

    Args:
        base: N x H x W x 4 uint8 tensor, straight-alpha sRGB (alpha 255 where opaque).
        cand: Candidate pixels, same shape and device.
        samples_per_degree: Image samples per degree of visual angle (the viewing
            condition; pixgate uses `SCIELAB_SAMPLES_PER_DEGREE`).

    Returns:
        N x H x W float32 tensor on the images' device; every pixel, whatever its alpha
        (transparent pixels are white).
    """
    if base.shape != cand.shape or base.device != cand.device:
        raise ValueError(f"base and cand must match; got {tuple(base.shape)} and {tuple(cand.shape)}")
    lab = filtered_lab(base, samples_per_degree=samples_per_degree)
    lab -= filtered_lab(cand, samples_per_degree=samples_per_degree)
    return lab.square_().sum(dim=1).sqrt_()


def scielab_table(
    base: torch.Tensor,
    cand: torch.Tensor,
    keep: torch.Tensor | None = None,
    *,
    samples_per_degree: float = SCIELAB_SAMPLES_PER_DEGREE,
    with_colour: bool = False,
) -> torch.Tensor:
    """Per pair, the mean and the `DELTA_E_QUANTILE` quantile of S-CIELAB Delta E*ab.

    Over the pixels opaque (alpha >= `OPAQUE_ALPHA`) in both images and kept; the
    quantile is the inverted CDF (the k-th smallest, k = ceil(q * count)), as
    `delta_e_p95` is. Queued where the images live, with no host synchronisation.

    Args:
        base: N x H x W x 4 uint8 tensor, straight-alpha sRGB (alpha 255 where opaque).
        cand: Candidate pixels, same shape and device.
        keep: Optional N x H x W bool tensor on the same device: only these pixels count
            (ignore regions); every pixel when None. Pixels outside still take part in
            the filter around them, as the eye sees them.
        samples_per_degree: Image samples per degree of visual angle.
        with_colour: Add a third column, the mean of the colour part alone,
            sqrt(Delta a*^2 + Delta b*^2) of the same filtered images: lightness left to
            the structure measures, a moved glyph or a softer edge then counts for
            little while a cast or a conversion counts in full.

    Returns:
        N x 2 (N x 3 `with_colour`) float64 tensor (mean, quantile[, colour mean]); NaN
        for a pair where no pixel counts.
    """
    if base.shape != cand.shape or base.device != cand.device:
        raise ValueError(f"base and cand must match; got {tuple(base.shape)} and {tuple(cand.shape)}")
    counted = (base[..., 3] >= OPAQUE_ALPHA) & (cand[..., 3] >= OPAQUE_ALPHA)
    if keep is not None:
        if keep.shape != counted.shape:
            raise ValueError(f"keep must be N x H x W; got {tuple(keep.shape)}")
        counted &= keep
    table = difference_table(
        filtered_lab(base, samples_per_degree=samples_per_degree),
        filtered_lab(cand, samples_per_degree=samples_per_degree),
        counted,
    )
    return table if with_colour else table[:, :2]


def difference_table(base_lab: torch.Tensor, cand_lab: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """Per pair, from two filtered CIELAB images (`filtered_lab`): the mean and the
    `DELTA_E_QUANTILE` quantile of Delta E*ab, and the mean of its colour part alone, over
    the counted pixels: N x 3 float64, NaN for a pair where none counts.

    Args:
        base_lab: N x 3 x H x W CIELAB of the baseline.
        cand_lab: CIELAB of the candidate, same shape.
        counted: N x H x W bool: the pixels that count.
    """
    import torch

    from pixgate.scoring.metrics import quantiles

    squared = (base_lab - cand_lab).square_()
    n = squared.shape[0]
    count = counted.reshape(n, -1).sum(dim=1).to(torch.float64)

    def over_counted(values: torch.Tensor) -> torch.Tensor:
        return torch.where(counted, values, math.nan).reshape(n, -1)

    de = over_counted(squared.sum(dim=1).sqrt_())
    colour = over_counted((squared[:, 1] + squared[:, 2]).sqrt_())
    return torch.stack(
        [
            torch.nansum(de, dim=1, dtype=torch.float64) / count,
            quantiles(de, count),
            torch.nansum(colour, dim=1, dtype=torch.float64) / count,
        ],
        dim=1,
    )


__all__ = [
    "FILTERS",
    "MIN_SAMPLES_PER_DEGREE",
    "PUBLISHED_SPREADS",
    "PUBLISHED_WEIGHTS",
    "XYZ_TO_OPPONENT",
    "difference_table",
    "fast_length",
    "filtered_lab",
    "filtered_lab_of_opponent",
    "gaussians",
    "opponent_matrix",
    "scielab_delta_e",
    "scielab_table",
]
