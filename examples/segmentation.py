"""Semi-supervised segmentation with Mean Teacher, on a CPU in minutes.

A generated data set: discs and bars (classes 1 and 2) on textured, noisy backgrounds (class 0),
a handful of images with masks and many without. A small encoder-decoder is trained supervised-only
(labeled images alone) and with Mean Teacher (per-pixel softmax MSE against an EMA teacher on every
image, by default only where the teacher is confident), over several seeds; the EMA network of each
is evaluated by mean intersection-over-union on a test set (settings are chosen on a separate
validation set: ``--split validation``). Both see each batch turned by a random
multiple of 90 degrees and flipped (masks too); Mean Teacher's teacher sees it untransformed, and its
prediction is transformed the same way before the two are compared (an equivariant consistency).

    python examples/segmentation.py [--seeds 0 1 2] [--steps 1500] [--labeled 8] [--mask confidence] [--split validation]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from meanteacher import NO_LABEL, EMATeacher, classification_cost, confidence_mask, sigmoid_rampup, softmax_mse

CLASSES = 3
CONSISTENCY = 5.0
"""Weight of the per-pixel softmax MSE, chosen on the validation set (see ``--split``)."""


def make_images(count: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` grey images ``(count, 1, size, size)`` and their masks ``(count, size, size)``: one to
    three discs (class 1) and bars (class 2), bright or dark, on a textured, noisy background (class 0)."""
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    images, masks = [], []
    for _ in range(count):
        frequency, phase = torch.rand(2, generator=generator) * torch.tensor([0.8, 6.28])
        image = 0.3 * torch.sin(frequency * (xs + ys) + phase) + 0.2 * torch.randn(size, size, generator=generator)
        mask = torch.zeros(size, size, dtype=torch.long)
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            kind = int(torch.randint(1, CLASSES, (1,), generator=generator))
            cy, cx = (torch.rand(2, generator=generator) * (size - 8) + 4).tolist()
            if kind == 1:
                radius = float(torch.rand(1, generator=generator) * 3 + 3)
                shape = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
            else:
                half_length = float(torch.rand(1, generator=generator) * 5 + 5)
                horizontal = bool(torch.rand(1, generator=generator) < 0.5)
                dy, dx = (ys - cy).abs(), (xs - cx).abs()
                shape = (dy <= 1.5) & (dx <= half_length) if horizontal else (dx <= 1.5) & (dy <= half_length)
            brightness = float(torch.rand(1, generator=generator) * 0.6 + 0.4) * (
                1 if torch.rand(1, generator=generator) < 0.5 else -1
            )
            image = torch.where(shape, brightness + 0.2 * torch.randn(size, size, generator=generator), image)
            mask = torch.where(shape, torch.full_like(mask, kind), mask)
        images.append(image)
        masks.append(mask)
    return torch.stack(images).unsqueeze(1), torch.stack(masks)


class EncoderDecoder(nn.Module):
    """Two convolution blocks down, one up, a per-pixel classifier."""

    def __init__(self, classes: int = CLASSES, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.down1, self.down2 = block(1, width), block(width, 2 * width)
        self.up = block(3 * width, width)
        self.dropout = nn.Dropout2d(0.1)
        self.classify = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.down1(x)
        deep = self.down2(F.max_pool2d(skip, 2))
        up = F.interpolate(deep, scale_factor=2, mode="nearest")
        return self.classify(self.dropout(self.up(torch.cat([up, skip], dim=1))))


def rotate_flip(t: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """``turns`` quarter turns, then a horizontal flip, over the last two dimensions (images, masks, logits)."""
    t = torch.rot90(t, turns, dims=(-2, -1))
    return t.flip(-1) if flip else t


def noisy(x: torch.Tensor) -> torch.Tensor:
    """The input noise each network sees, drawn independently for student and teacher."""
    return x * (1 + 0.2 * torch.randn(len(x), 1, 1, 1)) + 0.15 * torch.randn_like(x)


def mean_iou(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean over the classes of intersection over union on a test set (model in eval mode)."""
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(images[i : i + 100]).argmax(1) for i in range(0, len(images), 100)])
    ious = []
    for c in range(CLASSES):
        intersection = ((predicted == c) & (masks == c)).sum()
        union = ((predicted == c) | (masks == c)).sum()
        ious.append(float(intersection) / max(float(union), 1.0))
    return statistics.fmean(ious)


EVALUATION_SEEDS = {"validation": 98, "test": 99}
"""The generator seeds of the two evaluation sets: choose settings on the validation set, report the test set."""


def train(
    method: str,
    seed: int,
    steps: int,
    labeled: int,
    unlabeled: int = 1000,
    mask: str = "confidence",
    consistency: float = CONSISTENCY,
    split: str = "test",
) -> float:
    """Mean IoU on ``split`` ("validation" or "test") of the EMA network after ``steps`` steps of
    ``method`` ("supervised" or "mean-teacher")."""
    data = torch.Generator().manual_seed(1000 + seed)  # the seed picks the labeled images too
    images, masks = make_images(labeled + unlabeled, 32, data)
    test_images, test_masks = make_images(300, 32, torch.Generator().manual_seed(EVALUATION_SEEDS[split]))
    labels = masks.clone()
    labels[labeled:] = NO_LABEL  # only the first ``labeled`` images keep their masks
    torch.manual_seed(seed)
    model = EncoderDecoder()
    teacher = EMATeacher(model, decay=0.99, buffers="own" if method == "mean-teacher" else "average")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        lab = torch.randint(0, labeled, (8,))
        if method == "supervised":
            rows = lab
        else:
            rows = torch.cat([lab, torch.randint(labeled, labeled + unlabeled, (24,))])
        x, y = images[rows], labels[rows]
        turns, flip = int(torch.randint(0, 4, (1,))), bool(torch.rand(1) < 0.5)
        model.train()
        logits = model(noisy(rotate_flip(x, turns, flip)))  # the student sees a turned (and flipped) view
        loss = classification_cost(logits, rotate_flip(y, turns, flip), "labeled")
        if method == "mean-teacher":
            teacher.module.train()
            with torch.no_grad():  # the teacher sees the image as it is; its prediction is turned to match
                teacher_logits = rotate_flip(teacher.module(noisy(x)), turns, flip)
            where = confidence_mask(teacher_logits, 0.8) if mask == "confidence" else None
            loss = loss + consistency * sigmoid_rampup(step, steps // 4) * softmax_mse(
                logits, teacher_logits, mask=where
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        teacher.update(model, step + 1)
    return mean_iou(teacher.module, test_images, test_masks)


def compare(
    seeds: list[int],
    steps: int,
    labeled: int,
    mask: str = "none",
    unlabeled: int = 1000,
    consistency: float = CONSISTENCY,
    split: str = "test",
) -> dict[str, list[float]]:
    """Mean IoU of both methods for each seed (paired: the same labeled images and initialisation)."""
    return {
        method: [train(method, seed, steps, labeled, unlabeled, mask, consistency, split) for seed in seeds]
        for method in ("supervised", "mean-teacher")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--labeled", type=int, default=8, help="images with masks (of 1,000 more without)")
    parser.add_argument(
        "--mask",
        choices=("none", "confidence"),
        default="confidence",
        help="consistency only where the teacher is confident (chosen on the validation set), or everywhere",
    )
    parser.add_argument(
        "--consistency",
        type=float,
        default=CONSISTENCY,
        help="weight of the per-pixel softmax MSE (averaged over classes)",
    )
    parser.add_argument(
        "--split", choices=tuple(EVALUATION_SEEDS), default="test", help="choose settings on validation, report on test"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = compare(args.seeds, args.steps, args.labeled, args.mask, consistency=args.consistency, split=args.split)
    for method, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"{method:>13}: mean IoU {statistics.fmean(values):.3f} ± {spread:.3f} over seeds {args.seeds} "
            f"({', '.join(f'{v:.3f}' for v in values)})"
        )
    print(
        f"({time.perf_counter() - start:.0f} s; {args.split} set, EMA weights for both methods, "
        f"{args.labeled} labeled images, {args.steps} steps)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
