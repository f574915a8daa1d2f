"""Backgrounds: each mode's colour and compositing checked by hand, the border estimate, the warning on borders that
disagree with the setting, and bad colours refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent_triplane_ns.backgrounds import (
    SceneBackgrounds,
    SceneBorders,
    border_pixels,
    check_color,
    disagreements,
    key_alpha,
    random_palette,
    read_borders,
    scene_colors,
)
from latent_triplane_ns.errors import InputError
from latent_triplane_ns.renderers import LatentRenderer

BLUE = (0.1, 0.2, 0.8)


def identity_autoencoder():
    """The identity autoencoder (triplane-rgb's): latents are the colours."""
    from latent_triplane_ns.autoencoder import AutoencoderConfig, LatentAutoencoder

    return LatentAutoencoder(AutoencoderConfig(source="identity"))


class ArrayDataset:
    """`get_numpy_image` over arrays, as an InputDataset serves a scene's views."""

    def __init__(self, images):
        self.images = images

    def get_numpy_image(self, index):
        return self.images[index]


def view(color, size=32, object_color=(1.0, 0.0, 0.0), alpha=None):
    """A uint8 view: an object square in the middle, `color` around it (an alpha channel when `alpha` is given)."""
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = color
    image[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = object_color
    if alpha is not None:
        channel = np.full((size, size, 1), alpha, dtype=np.float32)
        channel[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
        image = np.concatenate([image, channel], axis=-1)
    return np.round(image * 255).astype(np.uint8)


def test_each_mode_gives_its_colour_and_the_renderer_composites_it_per_scene():
    borders = SceneBorders(torch.tensor([[1.0, 1.0, 1.0], list(BLUE)]), torch.ones(2), torch.ones(2, dtype=torch.bool))
    expected = {
        "white": [[1, 1, 1], [1, 1, 1]],
        "black": [[0, 0, 0], [0, 0, 0]],
        "color": [[0.5, 0.25, 0], [0.5, 0.25, 0]],
        "border": [[1, 1, 1], list(BLUE)],
        "learned": [[1, 1, 1], list(BLUE)],
    }
    for mode, colors in expected.items():
        got = scene_colors(mode, (0.5, 0.25, 0.0), borders, 2)
        assert torch.allclose(got, torch.tensor(colors, dtype=torch.float32)), mode

    backgrounds = SceneBackgrounds(scene_colors("border", (1, 1, 1), borders, 2), 3, learned=False)
    backgrounds.refresh(identity_autoencoder())
    # two rays, one per scene, each with one sample of weight 0.25 and value (0, 0, 0):
    # 0.25 * 0 + 0.75 * background of the ray's scene
    scenes = torch.tensor([0, 1])
    rendered = LatentRenderer()(torch.zeros(2, 1, 3), torch.full((2, 1, 1), 0.25), backgrounds.latents()[scenes])
    assert torch.allclose(rendered, torch.tensor([[0.75, 0.75, 0.75], [0.075, 0.15, 0.6]]))
    assert backgrounds.learned is None and "colors" not in backgrounds.state_dict()  # recomputed, never stored

    learned = SceneBackgrounds(scene_colors("learned", (1, 1, 1), borders, 2), 3, learned=True)
    learned.refresh(identity_autoencoder(), initialise=True)
    assert torch.allclose(learned.latents(), torch.tensor([[1.0, 1.0, 1.0], list(BLUE)]))
    assert learned.latents().requires_grad and list(learned.state_dict()) == ["learned"]
    learned.latents().sum().backward()  # a gradient reaches each scene's row
    assert torch.equal(learned.learned.grad, torch.ones(2, 3))


def test_border_colours_of_views_with_and_without_alpha():
    ring = border_pixels(torch.from_numpy(view(BLUE, size=8)).float() / 255.0, 1)
    assert ring.shape == (28, 3)  # 8 * 8 - 6 * 6 pixels
    blue_views = [view(BLUE) for _ in range(3)]
    transparent = [view((0.0, 0.0, 0.0), alpha=0.0) for _ in range(3)]  # black where transparent
    dataset = ArrayDataset(blue_views + transparent)
    borders = read_borders(dataset, torch.tensor([0, 0, 0, 1, 1, 1]), torch.ones(3))
    assert torch.allclose(borders.colors[0], torch.tensor(BLUE), atol=1 / 255)
    assert torch.equal(borders.colors[1], torch.ones(3))  # composited over the alpha colour, white
    assert borders.opaque.tolist() == [True, False] and borders.uniform.tolist() == [1.0, 1.0]


def test_the_warning_fires_on_blue_borders_with_white_and_never_on_white_or_on_views_with_alpha():
    dataset = ArrayDataset([view(BLUE), view(BLUE), view((1.0, 1.0, 1.0)), view((0.0, 0.0, 0.0), alpha=0.0)])
    names = ["blue_car", "white_car", "rgba_car"]
    borders = read_borders(dataset, torch.tensor([0, 0, 1, 2]), torch.ones(3))

    (line,) = disagreements("white", scene_colors("white", (1, 1, 1), borders, 3), borders, names)
    assert line.startswith("blue_car: the views have no alpha and their borders are 0.10 0.20 0.80")
    assert "white_car" not in line and "rgba_car" not in line and "--pipeline.model.background border" in line
    assert disagreements("border", scene_colors("border", (1, 1, 1), borders, 3), borders, names) == []
    blue_only = read_borders(ArrayDataset([view(BLUE)]), torch.tensor([0]), torch.ones(3))
    assert disagreements("color", scene_colors("color", BLUE, blue_only, 1), blue_only, ["blue_car"]) == []

    # borders of many colours: no single colour can stand for them, whatever the setting
    patchy, half = view(BLUE), 16
    patchy[:half, :half], patchy[:half, half:], patchy[half:, :half] = 0, 255, (200, 30, 30)  # and blue
    clutter = read_borders(ArrayDataset([patchy]), torch.tensor([0]), torch.ones(3))
    (line,) = disagreements("border", clutter.colors, clutter, ["kitchen"])
    assert line.startswith("kitchen: the borders of the views are not one colour")
    clutter.masked = True  # masks say which pixels count: the clutter carries no loss
    assert disagreements("border", clutter.colors, clutter, ["kitchen"]) == []


@pytest.mark.parametrize("color", [(1.5, 0.0, 0.0), (-0.1, 0.5, 0.5), (0.5, 0.5)])
def test_a_bad_colour_is_refused_naming_the_flag(color):
    message = r"--pipeline.model.background-color .*: give three values \(R G B\) in \[0, 1\]"
    with pytest.raises(InputError, match=message):
        check_color(color, "--pipeline.model.background-color")


def test_random_backgrounds_choose_a_colour_per_ray_by_hand():
    palette = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.4, 0.6]])
    backgrounds = SceneBackgrounds(torch.tensor([[1.0, 1.0, 1.0], list(BLUE)]), 3, learned=False, palette=palette)
    backgrounds.refresh(identity_autoencoder())
    scenes, choice = torch.tensor([0, 1, 1, 0]), torch.tensor([-1, -1, 0, 1])
    expected = [[1.0, 1.0, 1.0], list(BLUE), [0.0, 1.0, 0.0], [0.2, 0.4, 0.6]]
    assert torch.allclose(backgrounds.of_rays(scenes, choice), torch.tensor(expected))
    assert torch.allclose(backgrounds.of_rays(scenes), torch.tensor([[1.0, 1.0, 1.0], list(BLUE)] * 2)[[0, 1, 3, 2]])
    assert random_palette(3).shape == (3, 3) and torch.equal(random_palette(3), random_palette(3))


def test_random_backgrounds_of_triplane_rgb_put_any_colour_behind_each_ray_by_hand(
    tiny_collection, tmp_path, make_config
):
    """The identity autoencoder: each training ray's target is its RGBA pixel composited by hand over the colour its
    metadata carries, and the model renders that ray over the same colour."""
    config = make_config("triplane-rgb", tiny_collection, tmp_path, steps=2, background="random")
    pipeline = config.pipeline.setup(device="cpu")
    datamanager, model = pipeline.datamanager, pipeline.model
    assert torch.equal(model.backgrounds.colors, torch.ones(2, 3))  # renders on white: evaluated over the border colour
    ray_bundle, batch = datamanager.next_train(0)
    colors = ray_bundle.metadata["background_color"]
    assert colors.shape == (len(batch["latent"]), 3) and 0 <= float(colors.min()) and float(colors.max()) <= 1
    assert float(colors.std()) > 0.2  # any colour, not a few
    dataset = datamanager.train_dataset
    alphas = []
    for ray in range(len(colors)):
        image, y, x = batch["indices"][ray].tolist()
        rgba = torch.from_numpy(dataset.get_numpy_image(image).astype(np.float32) / 255.0)[y, x]
        by_hand = rgba[:3] * rgba[3] + colors[ray] * (1.0 - rgba[3])
        assert torch.allclose(batch["latent"][ray], by_hand, atol=1e-6)
        alphas.append(float(rgba[3]))
    transparent = torch.tensor(alphas) == 0
    assert transparent.any() and torch.allclose(batch["latent"][transparent], colors[transparent])
    outputs = model(ray_bundle)  # a ray that hits nothing shows its own colour
    empty = outputs["accumulation"].view(-1) < 1e-4
    assert empty.any() and torch.allclose(outputs["latent"][empty], colors[empty], atol=1e-3)
    eval_rays, _ = datamanager.next_eval(0)  # held-out rays are evaluated over their scene's colour
    assert not {"background_color", "background_choice"} & set(eval_rays.metadata or {})


def test_random_backgrounds_of_an_autoencoder_take_each_rays_target_from_its_colours_cache(
    tiny_collection, tmp_path, make_config
):
    config = make_config(
        "latent-triplane-small", tiny_collection, tmp_path, steps=2, background="random", random_colors=3
    )
    pipeline = config.pipeline.setup(device="cpu")
    datamanager, model = pipeline.datamanager, pipeline.model
    assert torch.equal(model.backgrounds.palette, random_palette(3))
    cached = datamanager.cached_train
    assert cached["palette_latents"].shape == (3, *cached["latents"].shape)
    ae = model.autoencoder
    first = datamanager.load_image(datamanager.train_dataset, 0, model.backgrounds.palette[1])
    with torch.no_grad():  # the second colour's cache holds the views over that colour, encoded
        encoded = ae.encode(first.permute(2, 0, 1)[None]).permute(0, 2, 3, 1)[0]
    assert torch.allclose(cached["palette_latents"][1, 0], encoded, atol=1e-5)
    ray_bundle, batch = datamanager.next_train(0)
    choice = ray_bundle.metadata["background_choice"].view(-1)
    assert set(choice.tolist()) == {-1, 0, 1, 2}
    image, y, x = batch["indices"].unbind(-1)
    expected = torch.where(
        (choice >= 0).unsqueeze(-1),
        cached["palette_latents"][choice.clamp(min=0), image, y, x],
        cached["latents"][image, y, x],
    )
    assert torch.equal(batch["latent"], expected)
    scenes = model.scene_of_rays(ray_bundle)
    by_ray = model.backgrounds.of_rays(scenes, choice)
    assert torch.equal(by_ray[choice >= 0], model.backgrounds.palette_encoded[choice[choice >= 0]])
    assert torch.equal(by_ray[choice < 0], model.backgrounds.encoded[scenes[choice < 0]])


def test_random_backgrounds_leave_scenes_without_alpha_on_their_border_colour(tmp_path, make_config, capsys):
    from latent_triplane_ns.procedural import generate_collection

    root = tmp_path / "blue"
    kw = dict(num_scenes=2, seed=3, image_size=32, num_train_views=3, num_test_views=1, workers=1, show_progress=False)
    generate_collection(root, backdrop="color", **kw)
    config = make_config("triplane-rgb", root, tmp_path, steps=2, background="random")
    config.pipeline.datamanager.key_border = False
    pipeline = config.pipeline.setup(device="cpu")
    assert "scene_00000, scene_00001: the views have no alpha, so background random" in capsys.readouterr().out
    ray_bundle, batch = pipeline.datamanager.next_train(0)
    scenes = pipeline.model.scene_of_rays(ray_bundle)
    colors = pipeline.model.backgrounds.colors
    assert torch.equal(ray_bundle.metadata["background_color"], colors[scenes])
    assert torch.equal(
        batch["latent"], pipeline.datamanager.cached_train["latents"][tuple(batch["indices"].unbind(-1))]
    )
    config = make_config("latent-triplane-small", root, tmp_path, steps=2, background="random", random_colors=0)
    with pytest.raises(InputError, match="random-colors 0: give at least one colour"):
        config.pipeline.setup(device="cpu")


def test_key_alpha_keys_out_the_backdrop_connected_to_the_border_by_hand():
    image = torch.from_numpy(view(BLUE, size=8)[..., :3].astype(np.float32) / 255.0)
    image[3, 3] = torch.tensor(BLUE)  # a pixel of the backdrop's colour inside the object stays opaque
    image[0, 0] = torch.tensor(BLUE) + 0.05  # within the tolerance: keyed out
    alpha = key_alpha(image, torch.tensor(BLUE))[..., 0]
    expected = torch.zeros(8, 8)
    expected[2:6, 2:6] = 1.0
    assert alpha.shape == (8, 8) and torch.equal(alpha, expected)
    image[2:6, 2] = torch.tensor(BLUE)  # the object's column of the backdrop's colour touches it: keyed out too
    assert float(key_alpha(image, torch.tensor(BLUE))[2:6, 2].sum()) == 0.0


def test_key_border_gives_views_without_alpha_a_random_background_and_leaves_held_out_views_as_they_are(
    tmp_path, make_config, capsys
):
    from latent_triplane_ns.procedural import generate_collection

    root = tmp_path / "blue"
    kw = dict(num_scenes=2, seed=3, image_size=32, num_train_views=3, num_test_views=1, workers=1, show_progress=False)
    generate_collection(root, backdrop="color", **kw)
    config = make_config("triplane-rgb", root, tmp_path, steps=2)
    assert config.pipeline.datamanager.key_border and config.pipeline.model.background == "random"  # the preset's
    pipeline = config.pipeline.setup(device="cpu")
    assert "no alpha" not in capsys.readouterr().out
    datamanager, model = pipeline.datamanager, pipeline.model
    borders = datamanager.train_dataset.metadata["scene_borders"]
    assert borders.keyed.all() and not borders.opaque.any()
    ray_bundle, batch = datamanager.next_train(0)
    colors = ray_bundle.metadata["background_color"]
    scenes = model.scene_of_rays(ray_bundle)
    dataset = datamanager.train_dataset
    keyed = []
    for ray in range(len(colors)):  # each target by hand: the pixel, or the ray's colour where the backdrop is keyed
        image, y, x = batch["indices"][ray].tolist()
        rgb = torch.from_numpy(dataset.get_numpy_image(image).astype(np.float32) / 255.0)
        opaque = key_alpha(rgb, borders.colors[int(scenes[ray])])[y, x]
        assert torch.allclose(batch["latent"][ray], rgb[y, x] * opaque + colors[ray] * (1.0 - opaque), atol=1e-6)
        keyed.append(float(opaque) == 0.0)
    assert any(keyed) and not all(keyed)
    index = 0  # a held-out view is served as read from disk
    held_out = datamanager.load_image(datamanager.eval_dataset, index)
    on_disk = torch.from_numpy(datamanager.eval_dataset.get_numpy_image(index).astype(np.float32) / 255.0)
    assert torch.equal(held_out, on_disk[: held_out.shape[0], : held_out.shape[1], :3])
    swept = tmp_path / "gradient"  # a backdrop of many colours is not keyed: the warning says what it needs
    generate_collection(swept, backdrop="gradient", **kw)
    pipeline = make_config("triplane-rgb", swept, tmp_path, steps=2).pipeline.setup(device="cpu")
    assert not pipeline.datamanager.train_dataset.metadata["scene_borders"].keyed.any()
    assert "the borders of the views are not one colour" in capsys.readouterr().out
