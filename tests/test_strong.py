"""Strong augmentation: each operation does what its name says on a known image, the batch keeps its
dtype, shape and range, the same generator gives the same batch, nothing is read back to the host, and
the photometric variant moves no pixel."""

import pytest
import torch

from meanteacher.config import Config
from meanteacher.config.checks import validate
from meanteacher.data.strong import (
    OPERATIONS,
    PHOTOMETRIC,
    StrongAugmenter,
    affine,
    autocontrast,
    brightness,
    color,
    contrast,
    cutout,
    cutout_at,
    equalize,
    posterize,
    rotation_matrix,
    sharpness,
    shear_matrix,
    solarize,
    translation_matrix,
)
from meanteacher.errors import MeanTeacherError
from meanteacher.run.train import Trainer
from tests.helpers import HostReads, tiny_config


def images(n=4, c=3, h=8, w=8, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_a_90_degree_rotation_turns_the_image_counter_clockwise():
    x = images()
    turned = affine(x, rotation_matrix(torch.full((4,), 90.0)))
    assert torch.allclose(turned, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    assert not torch.allclose(turned, torch.rot90(x, -1, dims=(2, 3)), atol=1e-2)


def test_translation_moves_content_and_fills_with_grey():
    x = images(w=10)
    moved = affine(x, translation_matrix(torch.full((4,), 3.0), "x"))
    assert torch.allclose(moved[..., 3:], x[..., :-3], atol=1e-6)
    assert torch.all(moved[..., :3] == 0.5)
    down = affine(x, translation_matrix(torch.full((4,), 2.0), "y"))
    assert torch.allclose(down[..., 2:, :], x[..., :-2, :], atol=1e-6)


def test_shear_keeps_the_centre_row_and_shifts_the_others():
    x = images(h=9, w=9)
    sheared = affine(x, shear_matrix(torch.full((4,), 1.0), "x"))  # one pixel per pixel away from the centre
    assert torch.allclose(sheared[:, :, 4], x[:, :, 4], atol=1e-6)
    assert torch.allclose(sheared[:, :, 5, :-1], x[:, :, 5, 1:], atol=1e-6)
    assert torch.allclose(affine(x, shear_matrix(torch.zeros(4), "y")), x, atol=1e-6)


def test_solarize_inverts_what_is_at_or_above_the_threshold():
    x = torch.tensor([0.1, 0.4, 0.5, 0.9]).view(1, 1, 2, 2)
    assert torch.allclose(solarize(x, 0.5), torch.tensor([0.1, 0.4, 0.5, 0.1]).view(1, 1, 2, 2))
    assert torch.equal(solarize(x, 1.01), x)


def test_posterize_keeps_the_high_bits():
    x = images()
    for bits in (4, 6, 8):
        levels = posterize(x, bits) * 255
        assert torch.allclose(levels, levels.round(), atol=1e-3)
        assert torch.all(levels.round().long() % 2 ** (8 - bits) == 0)
    assert torch.allclose(posterize(x, 8), (x * 255).round() / 255)


def test_equalize_makes_the_histogram_flat():
    narrow = 0.2 + 0.25 * torch.rand(
        2, 3, 64, 64, generator=torch.Generator().manual_seed(1)
    )  # low contrast: 64 levels
    levels = (equalize(narrow) * 255).round().flatten(1)
    steps = torch.arange(15, 256, 16)
    for row in levels:
        cdf = torch.stack([(row <= level).float().mean() for level in steps])
        assert (cdf - (steps + 1) / 256).abs().max() < 0.05  # PIL's rule clips the top levels a little
    before = (narrow * 255).round().flatten(1)
    assert before.min() >= 51 and before.max() <= 115  # the input used a quarter of the range
    flat = torch.full((1, 1, 4, 4), 0.3)
    assert torch.equal(equalize(flat), flat)  # one level: kept, as PIL does


def test_autocontrast_stretches_each_channel_and_keeps_a_flat_one():
    x = images() * 0.5 + 0.2
    x[0, 1] = 0.4
    stretched = autocontrast(x)
    assert torch.allclose(stretched[1:].amin(dim=(2, 3)), torch.zeros(3, 3), atol=1e-6)
    assert torch.allclose(stretched[1:].amax(dim=(2, 3)), torch.ones(3, 3), atol=1e-6)
    assert torch.equal(stretched[0, 1], x[0, 1])


def test_the_blends_at_their_ends():
    x = images()
    for operation in (color, contrast, brightness, sharpness):
        assert torch.allclose(operation(x, 1.0), x, atol=1e-6), operation.__name__
    assert torch.equal(brightness(x, 0.0), torch.zeros_like(x))
    grey = color(x, 0.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    flat = contrast(x, 0.0)
    assert torch.allclose(flat, flat.mean(dim=(1, 2, 3), keepdim=True).expand_as(flat), atol=1e-6)
    smooth = sharpness(x, 0.0)
    assert torch.equal(smooth[..., 0, :], x[..., 0, :]) and smooth[..., 1:-1, 1:-1].std() < x[..., 1:-1, 1:-1].std()


@pytest.mark.parametrize("side", [3, 4])
def test_cutout_fills_a_square_of_the_size_asked(side):
    x = images(h=12, w=12)
    offset = 0.5 * (side % 2 == 0)  # an even square is centred between pixels
    cut = cutout_at(x, torch.tensor([5.0, 6.0, 4.0, 7.0]) - offset, torch.tensor([6.0, 5.0, 5.0, 6.0]) - offset, side)
    filled = (cut == 0.5).all(dim=1)
    assert filled.flatten(1).sum(dim=1).tolist() == [side * side] * 4
    generator = torch.Generator().manual_seed(0)
    random_cut = cutout(x, 0.5, generator)  # a side of 6 at a random centre, clipped by the border
    areas = (random_cut == 0.5).all(dim=1).flatten(1).sum(dim=1)
    assert torch.all((areas > 0) & (areas <= 36))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
def test_the_batch_keeps_dtype_shape_and_range(dtype):
    x = images(n=64, h=16, w=12)
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    out = StrongAugmenter(ops=3, magnitude=1.0)(x, torch.Generator().manual_seed(0))
    assert out.dtype == dtype and out.shape == x.shape
    top = 255 if dtype == torch.uint8 else 1.0
    assert out.min() >= 0 and out.max() <= top
    assert not torch.equal(out, x)


def test_the_same_seed_gives_the_same_batch():
    x = images(n=32)
    strong = StrongAugmenter()
    first = strong(x, torch.Generator().manual_seed(3))
    assert torch.equal(first, strong(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, strong(x, torch.Generator().manual_seed(4)))


def test_every_operation_is_drawn_and_each_image_gets_its_own():
    x = images(n=512, h=8, w=8)
    out = StrongAugmenter(ops=1, magnitude=1.0, cutout=0.0)(x, torch.Generator().manual_seed(0))
    changed = (out - x).abs().flatten(1).amax(dim=1) > 1e-4
    assert 0.8 < changed.float().mean() < 1.0  # identity (and a few weak draws) leave some images alone
    assert len(OPERATIONS) == 14 and len(PHOTOMETRIC) == 9


def test_no_host_reads():
    x = images(n=16)
    with HostReads() as guard:
        StrongAugmenter()(x, torch.Generator().manual_seed(0))
        StrongAugmenter(geometric=False)(x, torch.Generator().manual_seed(0))
    assert guard.reads == []


def test_the_photometric_variant_moves_no_pixel():
    """Photometric operations commute with a mirror and a transpose (none depends on where a pixel is);
    the geometric ones do not."""
    x = images(n=64, h=10, w=10)

    def commutes(strong, move):
        return torch.allclose(
            strong(move(x), torch.Generator().manual_seed(0)),
            move(strong(x, torch.Generator().manual_seed(0))),
            atol=1e-5,
        )

    photometric, full = StrongAugmenter(ops=2, cutout=0.0, geometric=False), StrongAugmenter(ops=2, cutout=0.0)
    for move in (lambda t: t.flip(3), lambda t: t.transpose(2, 3)):
        assert commutes(photometric, move)
        assert not commutes(full, move)


def test_the_student_gets_the_strong_view_and_the_teacher_the_weak_one(tmp_path):
    weak = Trainer(tiny_config(), tmp_path / "weak", progress=False)
    strong = Trainer(tiny_config(student_view="strong"), tmp_path / "strong", progress=False)
    index_batch = weak.sampler.batch(0)
    weak.generator.manual_seed(7)
    (teacher_alone,), _, _ = weak.feed.noised_views(0, index_batch, 1, weak.generator)
    strong.generator.manual_seed(7)
    (student, teacher), _, _ = strong.feed.noised_views(0, index_batch, 2, strong.generator)
    assert torch.equal(teacher, teacher_alone)  # the teacher's view is drawn first, as the weak one
    assert not torch.allclose(student, teacher, atol=1e-3)
    supervised = Trainer(
        tiny_config(method="supervised", student_view="photometric"), tmp_path / "supervised", progress=False
    )
    assert supervised.config.student_view == "photometric" and float(supervised.step()["class_cost"]) > 0


def test_a_strong_view_needs_pixels_in_memory():
    with pytest.raises(MeanTeacherError, match="normalize zca"):
        validate(Config(dataset="digits", student_view="strong", normalize="zca"))
    with pytest.raises(MeanTeacherError, match="a streamed folder"):
        validate(Config(dataset="digits", student_view="strong", data_format="streamed-folder"))
    with pytest.raises(MeanTeacherError, match="student_view"):
        validate(Config(dataset="digits", student_view="heavy"))


@pytest.mark.parametrize("view", ["weak", "strong", "photometric"])
def test_a_view_reads_nothing_back_and_makes_no_constant_on_the_host_after_its_first_call(tmp_path, view):
    """On a GPU a constant made from a Python list is a copy from the host that waits for it: a view makes
    its constants once per device, and then none (the first call may make them)."""
    trainer = Trainer(tiny_config(student_view=view), tmp_path, progress=False)
    generator = torch.Generator().manual_seed(0)
    batches = [trainer.sampler.batch(step) for step in range(3)]
    trainer.feed.noised_views(0, batches[0], 2, generator)
    with HostReads() as guard:
        for step in (1, 2):
            views, _, _ = trainer.feed.noised_views(step, batches[step], 2, generator)
    assert guard.reads == [] and guard.constants == []
    assert views[0].shape == views[1].shape and not torch.equal(views[0], views[1])


def test_the_guard_sees_a_constant_made_from_a_python_list():
    with HostReads() as guard:
        torch.tensor([0.299, 0.587, 0.114])
        torch.ones(3)
    assert guard.constants == ["aten.lift_fresh (3,)"]
