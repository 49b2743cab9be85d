"""Strong augmentation, batched on the images' device: RandAugment-style operations and cutout.

Each image gets its own random operations, magnitudes and signs, drawn from an optional
``torch.Generator``; every operation is computed for the whole batch with tensor operations and each
image keeps the result of the one it drew, so a call reads nothing back to the host, makes its constants
once per device (``_constant``), and the same generator state gives the same batch. The trainer draws the
views before the captured step, not inside it: see docs/design.md, "CUDA audit".

Images are floats in [0, 1], ``N x C x H x W`` (C = 1 or 3); uint8 images are taken and given back as
uint8. The operations follow PIL's (autocontrast, equalize, solarize, posterize, the ``ImageEnhance``
blends), as RandAugment (Cubuk et al., 2020) and FixMatch's variant of it use them.

    strong = StrongAugmenter(ops=2, magnitude=1.0, cutout=0.5)
    student_view = strong(images, generator)           # geometric and photometric
    dense_view = StrongAugmenter(geometric=False)(images, generator)  # pixels stay where they are
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OPERATIONS = (
    "identity",
    "autocontrast",
    "equalize",
    "rotate",
    "solarize",
    "color",
    "posterize",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
PHOTOMETRIC = tuple(name for name in OPERATIONS if name not in GEOMETRIC)
"""The operations that move no pixel: for dense outputs (segmentation), whose targets must stay aligned."""

MAX_ROTATE_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.3
"""Of the image's side."""
MAX_ENHANCE = 0.9
"""Colour, contrast, brightness and sharpness factors range over 1 ± this."""
MIN_POSTERIZE_BITS = 4
FILL = 0.5
"""Value of the area uncovered by a geometric operation, and of cutout's square: mid-grey."""
GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""PIL's RGB to L conversion."""


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def _constant(name: str, values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A constant tensor of ``values`` made once per name, dtype and device: on a GPU a tensor made from a
    Python list is a copy from the host that waits for it, which a view must not do at every call."""
    key = (name, dtype, device)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return _CONSTANTS[key]


def _per_image(value: torch.Tensor | float, images: torch.Tensor) -> torch.Tensor:
    """A scalar or one value per image, shaped to broadcast over ``N x C x H x W``."""
    value = torch.as_tensor(value, dtype=images.dtype, device=images.device)
    return value.reshape(-1, 1, 1, 1) if value.dim() else value


def _grey(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    weights = _constant("grey", list(GREY_WEIGHTS), images.dtype, images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def blend(images: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``degenerate + factor * (images - degenerate)``, clipped to [0, 1]: PIL's ``ImageEnhance``
    (factor 1 keeps the image, 0 gives the degenerate one, above 1 goes beyond it)."""
    return (degenerate + _per_image(factor, images) * (images - degenerate)).clamp(0.0, 1.0)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to span [0, 1] (a flat channel is kept)."""
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    spread = high - low
    flat = spread <= 0
    scale = torch.where(flat, torch.ones_like(spread), 1.0 / torch.where(flat, torch.ones_like(spread), spread))
    return ((images - torch.where(flat, torch.zeros_like(low), low)) * scale).clamp(0.0, 1.0)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """Equalize each channel's histogram over 256 levels (PIL's algorithm: a channel of one level is kept).

    Counts are held in floats (exact below 2**24 pixels per channel), which is faster than integers."""
    n, c, h, w = images.shape
    levels = (images * 255).round().clamp(0, 255).long().reshape(n * c, h * w)
    histogram = torch.zeros(n * c, 256, dtype=torch.float32, device=images.device)
    histogram.scatter_add_(1, levels, torch.ones(1, 1, dtype=torch.float32, device=images.device).expand_as(levels))
    last_level = 255 - (histogram.flip(1) > 0).to(torch.uint8).argmax(dim=1, keepdim=True)  # the highest level in use
    step = torch.floor((h * w - histogram.gather(1, last_level)) / 255)
    below = histogram.cumsum(dim=1) - histogram  # pixels at lower levels
    table = (torch.floor((below + torch.floor(step / 2)) / step.clamp_min(1)).clamp(0, 255) / 255).to(images.dtype)
    equalized = table.gather(1, levels).reshape(n, c, h, w)
    return torch.where(step.reshape(n, c, 1, 1) > 0, equalized, images)


def solarize(images: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """Invert the pixels at or above ``threshold`` (per image)."""
    return torch.where(images >= _per_image(threshold, images), 1.0 - images, images)


def posterize(images: torch.Tensor, bits: torch.Tensor | int) -> torch.Tensor:
    """Keep the ``bits`` highest bits (per image, 1 to 8) of each 8-bit level."""
    step = 2.0 ** (8 - _per_image(bits, images))
    return torch.floor((images * 255).round() / step) * step / 255


def _smoothed(images: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (3x3, centre 5), the border pixels kept."""
    c = images.shape[1]
    kernel = _constant(
        "smooth",
        [[1 / 13, 1 / 13, 1 / 13], [1 / 13, 5 / 13, 1 / 13], [1 / 13, 1 / 13, 1 / 13]],
        images.dtype,
        images.device,
    )
    smooth = F.conv2d(images, kernel.expand(c, 1, 3, 3), groups=c)
    return F.pad(smooth, (1, 1, 1, 1)) + images * F.pad(torch.zeros_like(smooth[:1, :1]), (1, 1, 1, 1), value=1.0)


DEGENERATE = {
    "color": _grey,
    "contrast": lambda images: _grey(images).mean(dim=(1, 2, 3), keepdim=True),
    "brightness": lambda images: torch.zeros_like(images[:, :1, :1, :1]),
    "sharpness": _smoothed,
}
"""What each ``ImageEnhance`` operation blends with (broadcastable to the images)."""


def color(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Saturation: blend with the image in grey (``factor`` 0 is grey, 1 the image)."""
    return blend(images, DEGENERATE["color"](images), factor)


def contrast(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with the mean grey level of each image (``factor`` 0 is flat grey)."""
    return blend(images, DEGENERATE["contrast"](images), factor)


def brightness(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with black (``factor`` 0 is black)."""
    return blend(images, DEGENERATE["brightness"](images), factor)


def sharpness(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with PIL's smoothed image (3x3 kernel, centre 5, the border pixels kept): ``factor`` 0 is smooth."""
    return blend(images, DEGENERATE["sharpness"](images), factor)


def affine(images: torch.Tensor, matrix: torch.Tensor, fill: float = FILL) -> torch.Tensor:
    """Warp each image by its own 2 x 3 ``matrix`` in pixel units about the image centre (output pixel
    -> input pixel, x right and y down), bilinear; uncovered pixels get ``fill``."""
    n, _, h, w = images.shape
    to_pixels = _constant(f"to_pixels {h}x{w}", [[w / 2, 0.0], [0.0, h / 2]], images.dtype, images.device)
    to_unit = _constant(f"to_unit {h}x{w}", [[2 / w, 0.0], [0.0, 2 / h]], images.dtype, images.device)
    linear = to_unit @ matrix[:, :, :2].to(images.dtype) @ to_pixels
    shift = to_unit @ matrix[:, :, 2:].to(images.dtype)
    grid = F.affine_grid(torch.cat([linear, shift], dim=2), [n, 1, h, w], align_corners=False)
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def rotation_matrix(degrees: torch.Tensor) -> torch.Tensor:
    """Per-image matrices (for ``affine``) that turn the image counter-clockwise by ``degrees``."""
    angle = degrees * (math.pi / 180)
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    return torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], dim=1)


def shear_matrix(amount: torch.Tensor, axis: str) -> torch.Tensor:
    """Per-image matrices that shear along ``axis`` ("x" or "y") by ``amount`` pixels per pixel."""
    one, zero = torch.ones_like(amount), torch.zeros_like(amount)
    rows = ([one, amount, zero], [zero, one, zero]) if axis == "x" else ([one, zero, zero], [amount, one, zero])
    return torch.stack([torch.stack(row, -1) for row in rows], dim=1)


def translation_matrix(pixels: torch.Tensor, axis: str) -> torch.Tensor:
    """Per-image matrices that move the image content ``pixels`` right ("x") or down ("y")."""
    one, zero = torch.ones_like(pixels), torch.zeros_like(pixels)
    x, y = (-pixels, zero) if axis == "x" else (zero, -pixels)
    return torch.stack([torch.stack([one, zero, x], -1), torch.stack([zero, one, y], -1)], dim=1)


def cutout_at(
    images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, side: int, fill: float = FILL
) -> torch.Tensor:
    """Fill a ``side`` x ``side`` square centred at (``rows``, ``cols``) in each image (clipped at the borders)."""
    h, w = images.shape[-2:]
    half = side / 2
    y = torch.arange(h, device=images.device).view(1, h, 1)
    x = torch.arange(w, device=images.device).view(1, 1, w)
    inside = ((y - rows.view(-1, 1, 1)).abs() < half) & ((x - cols.view(-1, 1, 1)).abs() < half)
    return torch.where(inside[:, None], torch.full_like(images, fill), images)


def cutout(
    images: torch.Tensor, size: float, generator: torch.Generator | None = None, fill: float = FILL
) -> torch.Tensor:
    """Cutout (DeVries & Taylor, 2017): a square of side ``size`` times the shorter side, centred at a
    random pixel of each image (so it may be clipped by the border), filled with ``fill``."""
    n, _, h, w = images.shape
    side = round(size * min(h, w))
    if side <= 0:
        return images
    offset = 0.5 * (side % 2 == 0)  # an even side is centred between two pixels
    rows = torch.randint(0, h, (n,), device=images.device, generator=generator) - offset
    cols = torch.randint(0, w, (n,), device=images.device, generator=generator) - offset
    return cutout_at(images, rows, cols, side, fill)


class StrongAugmenter:
    """RandAugment-style strong augmentation, batched: ``ops`` operations in a row, each image drawing
    its own from ``OPERATIONS`` (``PHOTOMETRIC`` with ``geometric=False``) with its own strength, uniform
    in [0, ``magnitude``] of each operation's range and of random sign; then ``cutout`` (side as a share
    of the shorter side; 0 for none)."""

    def __init__(self, ops: int = 2, magnitude: float = 1.0, cutout: float = 0.5, geometric: bool = True) -> None:
        if ops < 0 or not 0.0 <= magnitude <= 1.0 or not 0.0 <= cutout <= 1.0:
            raise ValueError(f"ops must be >= 0 and magnitude and cutout in [0, 1], got {ops}, {magnitude}, {cutout}")
        self.ops, self.magnitude, self.cutout = ops, magnitude, cutout
        self.names = OPERATIONS if geometric else PHOTOMETRIC

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        dtype = images.dtype
        x = images.float() / 255 if dtype == torch.uint8 else images.float()
        n, device = len(x), x.device
        for _ in range(self.ops):
            choice = torch.randint(0, len(self.names), (n,), device=device, generator=generator)
            strength = torch.rand(n, device=device, generator=generator) * self.magnitude
            sign = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0)
            x = self._apply(x, choice, strength, sign)
        if self.cutout > 0:
            x = cutout(x, self.cutout, generator)
        return (x * 255).round().clamp(0, 255).to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)

    def _apply(self, x: torch.Tensor, choice: torch.Tensor, strength: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """One operation per image: every operation over the whole batch, each image keeping its own.
        The four blends share one blend (with each image's degenerate), and the geometric operations
        one warp (with each image's matrix)."""
        h, w = x.shape[-2:]
        signed = sign * strength
        chosen = {name: choice == index for index, name in enumerate(self.names)}
        pixelwise = {
            "autocontrast": lambda: autocontrast(x),
            "equalize": lambda: equalize(x),
            "solarize": lambda: solarize(x, 1.0 - strength),
            "posterize": lambda: posterize(x, 8 - torch.round((8 - MIN_POSTERIZE_BITS) * strength)),
        }
        geometric = {
            "rotate": lambda: rotation_matrix(MAX_ROTATE_DEGREES * signed),
            "shear_x": lambda: shear_matrix(MAX_SHEAR * signed, "x"),
            "shear_y": lambda: shear_matrix(MAX_SHEAR * signed, "y"),
            "translate_x": lambda: translation_matrix(MAX_TRANSLATE * w * signed, "x"),
            "translate_y": lambda: translation_matrix(MAX_TRANSLATE * h * signed, "y"),
        }
        out = x
        for name, operation in pixelwise.items():
            out = torch.where(chosen[name][:, None, None, None], operation(), out)
        degenerate, blended = torch.zeros_like(x), torch.zeros_like(choice, dtype=torch.bool)
        for name, degenerate_of in DEGENERATE.items():
            degenerate = torch.where(chosen[name][:, None, None, None], degenerate_of(x), degenerate)
            blended = blended | chosen[name]
        out = torch.where(blended[:, None, None, None], blend(x, degenerate, 1.0 + MAX_ENHANCE * signed), out)
        if self.names is OPERATIONS:
            matrix = translation_matrix(torch.zeros_like(strength), "x")  # the identity
            moved = torch.zeros_like(choice, dtype=torch.bool)
            for name, matrix_of in geometric.items():
                matrix = torch.where(chosen[name][:, None, None], matrix_of(), matrix)
                moved = moved | chosen[name]
            out = torch.where(moved[:, None, None, None], affine(x, matrix), out)
        return out
