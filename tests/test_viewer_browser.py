"""The viewer in a real browser: `ns-viewer --load-config` on a trained run, driven by headless Chromium.

Two runs. On a `triplane-rgb` run (identity autoencoder) what the viewer shows is checked against the colours of the
scenes' objects: the render area must hold a region of the selected scene's car colour on the white background, the
image must be what the model itself renders for the camera the browser sent, and choosing another scene in the
viewer's "Scene" control must change the image to the other car's colour. On a `latent-triplane-small` run with a
briefly trained autoencoder, the render area must hold a decoded object on white that equals the model's own decoded
render of the selected scene for the browser's camera, and change with the scene control (at 32 px the latent image
is 4x4, so this tiny run decodes a rough blob, not a recognisable car: it checks the decoding path, not quality).
Skipped only where no Chromium exists (`.ci/env.sh` installs Debian's `chromium`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
import torch
from conftest import reduced_config, run_training
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.browser]
"""A browser and an ns-viewer process per test, on two tiny trained runs."""

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
"""Software WebGL: the viewer draws its render as a texture in a three.js scene."""
MAX_RES = 128
"""The viewer's "Max res" is set to this, so that the static (high) render takes about a second on a CPU."""
CAMERA_DISTANCE = 2.2
"""The browser's camera is dollied out (mouse wheel) to this distance from the object's centre (viser's initial
camera sits inside the object)."""
TIMEOUT_S = 90.0
SETTLED_S = 4.0
"""A frame counts as the render of the last camera once it has not changed for this long. After the camera stops
the viewer renders up to three times (moving, static low, static high) at about a second each on a CPU, and a render
that a newer camera interrupts is never shown, so a shorter wait can return an older camera's frame."""
VIEWPORT = {"width": 1280, "height": 800}


def find_chromium() -> Optional[str]:
    """A Chromium or Chrome executable: $LTN_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    explicit = os.environ.get("LTN_CHROMIUM")
    if explicit:
        return explicit
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_viewer(config: Path, port: int, log_file: Path) -> Iterator[subprocess.Popen]:
    """`ns-viewer --load-config` on 127.0.0.1:port, in its own process group, always stopped on exit."""
    command = [
        str(Path(sys.executable).parent / "ns-viewer"),
        "--load-config",
        str(config),
        "--viewer.websocket-host",
        "127.0.0.1",
        "--viewer.websocket-port",
        str(port),
    ]
    with open(log_file, "w") as log:
        env = dict(os.environ, OMP_NUM_THREADS="1")  # renders of 128 px: one thread is plenty
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"ns-viewer exited with {process.returncode}:\n{tail(log_file)}")
            if time.monotonic() > deadline:
                pytest.fail(f"ns-viewer did not listen on port {port} within {TIMEOUT_S:.0f} s:\n{tail(log_file)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield process
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(log_file: Path, chars: int = 4000) -> str:
    return log_file.read_text(errors="replace")[-chars:] if log_file.exists() else "(no log)"


def object_colour(images: List[np.ndarray]) -> np.ndarray:
    """Median colour (3,) of the non-white pixels of RGB images in [0, 1]: the car's body colour."""
    pixels = np.concatenate([image.reshape(-1, 3) for image in images])
    return np.median(pixels[pixels.min(axis=1) < 0.8], axis=0)


def regions(image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Masks of the white background and of clearly coloured (object) pixels of an RGB image in [0, 1]."""
    background = image.min(axis=-1) > 0.85
    distance_from_white = np.linalg.norm(1.0 - image, axis=-1)
    return background, distance_from_white > 0.5


def describe(image: np.ndarray, colours: Dict[str, np.ndarray]) -> str:
    background, obj = regions(image)
    median = np.median(image[obj], axis=0) if obj.any() else None
    distances = {name: None if median is None else float(np.linalg.norm(median - c)) for name, c in colours.items()}
    return f"background {background.mean():.1%}, object {obj.mean():.1%}, object median {median}, distances {distances}"


class ViewerPage:
    """The nerfstudio viewer page in headless Chromium, recording the cameras the page sends to the server."""

    def __init__(self, page, url: str):
        import msgspec

        self.page = page
        self.cameras: List[dict] = []
        self.camera_times: List[float] = []

        def on_frame(payload) -> None:
            if not isinstance(payload, bytes):
                return
            try:
                message = msgspec.msgpack.decode(payload)
            except msgspec.DecodeError:
                return
            for item in message if isinstance(message, list) else [message]:
                if isinstance(item, dict) and item.get("type") == "ViewerCameraMessage":
                    self.cameras.append(item)
                    self.camera_times.append(time.monotonic())

        # Only the viewer itself: the page's analytics and logo URLs are refused rather than left to time out.
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
        page.on("websocket", lambda ws: ws.on("framesent", on_frame))
        page.set_default_timeout(TIMEOUT_S * 1000)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("Connected", exact=True).wait_for()

    def render_area(self) -> dict:
        """Bounding box of the three.js canvas, that the render is drawn in, once the canvas is wholly in the window.

        The viewer's full-window box hides an overflow of 48 px (overflow: hidden, 1328 px of content in 1280), and
        Playwright scrolls a button into view before it clicks it: a click on the control panel while the page still
        lays itself out can scroll that box sideways by 48 px, which pushes the canvas's left edge out of the window
        for good. A screenshot of the canvas then comes back cropped to the window and no longer lines up with the
        render, so the canvas is scrolled back into view first."""
        canvas = self.page.locator("canvas[data-engine^='three.js']")
        canvas.scroll_into_view_if_needed()
        return canvas.bounding_box()

    def screenshot(self, clip: dict) -> np.ndarray:
        png = self.page.screenshot(clip=clip)
        image = Image.open(BytesIO(png)).convert("RGB")
        # Playwright crops a clip to the window without saying so: a cropped shot is not the whole render area.
        assert abs(image.width - clip["width"]) <= 1 and abs(image.height - clip["height"]) <= 1, (image.size, clip)
        return np.asarray(image, dtype=np.float32) / 255.0

    def resolution(self) -> Tuple[int, int]:
        """(width, height) of the last render, from the viewer's stats line."""
        text = self.page.get_by_text(re.compile(r"Resolution: \d+x\d+px")).inner_text()
        width, height = re.search(r"Resolution: (\d+)x(\d+)px", text).groups()
        return int(width), int(height)

    def choose(self, label: str, option: str) -> None:
        """Picks an option of one of the viewer's dropdowns, as a user does."""
        self.page.get_by_label(label, exact=True).click()
        self.page.get_by_role("option", name=option, exact=True).click()

    def options(self, label: str) -> List[str]:
        """The options a dropdown lists when opened."""
        self.page.get_by_label(label, exact=True).click()
        names = self.page.get_by_role("option").all_inner_texts()
        self.page.keyboard.press("Escape")
        return names

    def set_max_res(self, value: int) -> None:
        field_id = self.page.locator("input[type=text][value='512']").get_attribute("id")
        field = self.page.locator(f"#{field_id}")
        field.fill(str(value))
        field.press("Enter")

    def dolly_out(self, distance: float) -> dict:
        """Mouse-wheels out from the centre of the render area until the camera is `distance` from the origin, waits
        until the camera has settled, and returns the last camera the page sent."""
        box = self.render_area()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(40):  # each 100 of wheel delta moves the camera out by about 5%
            if self.cameras and np.linalg.norm(self.cameras[-1]["position"]) / 10.0 >= distance:
                break
            self.page.mouse.wheel(0, 500)
            self.page.wait_for_timeout(300)
        while time.monotonic() - self.camera_times[-1] < 1.0:
            self.page.wait_for_timeout(200)
        return self.cameras[-1]

    def wait_for_frame(
        self,
        log_file: Path,
        different_from: Optional[Frame] = None,
        shows: Optional[Callable[[Frame], Optional[str]]] = None,
    ) -> Frame:
        """Polls screenshots of the render area until a non-uniform frame at full "Max res" stays unchanged for
        SETTLED_S with no new camera (and differs from `different_from` when given), and returns it with the camera
        the page last sent. With `shows`, a settled frame is returned only once `shows(frame)` finds nothing wrong
        (returns None); until then polling goes on, since on a loaded CPU a render can outlast SETTLED_S and the frame
        of an older state (camera or scene) can look settled. A frame that never passes fails with `shows`' reason."""
        deadline = time.monotonic() + TIMEOUT_S
        previous, settled_since, rejected = None, time.monotonic(), None
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(700)
            box = self.render_area()
            frame = Frame(
                self.screenshot({k: box[k] for k in ("x", "y", "width", "height")}), self.cameras[-1], self.resolution()
            )
            ready = (
                frame.image.std() > 0.03
                and max(frame.resolution) == MAX_RES
                and (different_from is None or frame.difference(different_from) > 0.01)
            )
            unchanged = (
                ready
                and previous is not None
                and frame.camera is previous.camera
                and frame.difference(previous) < 0.002
            )
            if not unchanged:
                previous, settled_since = (frame if ready else None), time.monotonic()
            elif time.monotonic() - settled_since >= SETTLED_S:
                rejected = shows(frame) if shows is not None else None
                if rejected is None:
                    return frame
                settled_since = time.monotonic()
        reason = f"the last settled frame: {rejected}" if rejected else "no new rendered frame"
        pytest.fail(f"{reason} (after {TIMEOUT_S:.0f} s); viewer log:\n{tail(log_file)}")


@dataclass
class Frame:
    """A screenshot of the render area (H, W, 3) in [0, 1], the camera the page had sent, the render's (W, H)."""

    image: np.ndarray
    camera: dict
    resolution: Tuple[int, int]

    def at_render_resolution(self) -> np.ndarray:
        """The screenshot scaled to the render's resolution (the viewer stretches the render over the area)."""
        image = Image.fromarray((self.image * 255).astype(np.uint8)).resize(self.resolution, Image.BOX)
        return np.asarray(image, dtype=np.float32) / 255.0

    def difference(self, other: Frame) -> float:
        """Mean absolute difference of the two screenshots at 64 x 64."""
        a, b = (Image.fromarray((f.image * 255).astype(np.uint8)).resize((64, 64), Image.BOX) for f in (self, other))
        return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean() / 255.0)


def model_render(model, camera_message: dict, scene: str, resolution: Tuple[int, int]) -> np.ndarray:
    """What the model renders for the camera the browser sent, as the viewer's render thread builds it."""
    import viser.transforms as vtf
    from nerfstudio.cameras.cameras import CameraType
    from nerfstudio.viewer.utils import CameraState, get_camera
    from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO

    rotation = vtf.SO3(wxyz=np.asarray(camera_message["wxyz"])) @ vtf.SO3.from_x_radians(np.pi)
    position = torch.tensor(camera_message["position"], dtype=torch.float64) / VISER_NERFSTUDIO_SCALE_RATIO
    c2w = torch.cat([torch.tensor(rotation.as_matrix()), position[:, None]], dim=1)
    state = CameraState(
        fov=camera_message["fov"], aspect=camera_message["aspect"], c2w=c2w, camera_type=CameraType.PERSPECTIVE
    )
    width, height = resolution
    model.eval()
    model.select_scene(scene)
    try:
        rgb = model.get_outputs_for_camera(get_camera(state, height, width))["rgb"]
    finally:
        model.select_scene(model.scene_names[0])
    return rgb.cpu().numpy()


def masked_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference over the pixels where either image shows the object."""
    mask = regions(a)[1] | regions(b)[1]
    return float(np.abs(a - b)[mask].mean())


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium executable (chromium, chromium-browser, google-chrome or $LTN_CHROMIUM): the viewer's "
            "browser test needs one; `.ci/env.sh` installs Debian's `chromium`"
        )
    return path


@pytest.fixture(scope="module")
def trained_rgb_run(tiny_collection, tmp_path_factory):
    """A 2-scene triplane-rgb run, trained until each car shows its own colour on white."""
    config = reduced_config("triplane-rgb", tiny_collection, tmp_path_factory.mktemp("viewer_run"), steps=150)
    # The preset's rate is tuned for long runs; this short one reaches the cars' colours at a smaller one.
    for group in config.optimizers.values():
        group["optimizer"].lr = 1e-2
    trainer = run_training(config)
    return trainer, trainer.base_dir / "config.yml"


@pytest.fixture(scope="module")
def trained_latent_run(tiny_collection, tmp_path_factory):
    """A 2-scene latent-triplane-small run whose compact autoencoder (8x downsampling) was first trained briefly on
    the same images, so that it decodes the background latent to white and the scenes to objects on it."""
    from latent_triplane_ns.ae_training import AETrainingConfig, train_and_save_autoencoder
    from latent_triplane_ns.autoencoder import AutoencoderConfig, CompactAEConfig

    root = tmp_path_factory.mktemp("viewer_latent_run")
    training = AETrainingConfig(
        architecture=CompactAEConfig(block_out_channels=(16, 16, 16, 16)),
        crop_size=None,
        max_steps=300,
        eval_every_seconds=60.0,
        lr=5e-3,
        precision="fp32",
    )
    train_and_save_autoencoder(training, tiny_collection, root / "autoencoder", scene_range=(0, 2))
    autoencoder = AutoencoderConfig(source="pretrained", pretrained_path=root / "autoencoder")
    trainer = run_training(
        reduced_config("latent-triplane-small", tiny_collection, root, steps=150, autoencoder=autoencoder)
    )
    return trainer, trainer.base_dir / "config.yml"


def browse(chromium: str, config_file: Path, model, first: str, second: str, tmp_path: Path) -> Dict[str, Frame]:
    """Opens the run in `ns-viewer` and headless Chromium as a user does: hides the training cameras, lowers "Max res",
    dollies out, waits for a settled frame that is the model's render of `first` (see mismatch_with_model), checks
    the output list, picks `second` in the "Scene" control and waits for its frame likewise, then switches the output
    to depth. Returns the two frames, which must differ; the viewer's log must hold no traceback."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the `playwright` package is missing: `pip install -e '.[dev]'` (it drives the system Chromium)")

    log_file = tmp_path / "ns-viewer.log"
    port = free_port()
    with running_viewer(config_file, port, log_file), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            viewer = ViewerPage(browser.new_page(viewport=VIEWPORT), f"http://127.0.0.1:{port}")
            viewer.page.get_by_role("button", name="Hide Train Cams").click()
            viewer.set_max_res(MAX_RES)
            viewer.dolly_out(CAMERA_DISTANCE)

            frames = {
                first: viewer.wait_for_frame(log_file, shows=lambda f: mismatch_with_model(model, f, first, second))
            }
            viewer.page.screenshot(path=str(tmp_path / f"viewer_{first}.png"))
            outputs = viewer.options("Output type")
            assert outputs[:4] == ["rgb", "latent", "depth", "accumulation"], outputs

            viewer.choose("Scene", second)
            frames[second] = viewer.wait_for_frame(
                log_file,
                different_from=frames[first],
                shows=lambda f: mismatch_with_model(model, f, second, first),
            )
            viewer.page.screenshot(path=str(tmp_path / f"viewer_{second}.png"))

            viewer.choose("Output type", "depth")
            viewer.wait_for_frame(log_file, different_from=frames[second])
        finally:
            browser.close()
    log = log_file.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert frames[first].difference(frames[second]) > 0.01
    return frames


def mismatch_with_model(model, frame: Frame, name: str, other: str) -> Optional[str]:
    """None if the frame shows an object on the white background and is the model's own render of scene `name` for
    the camera the browser sent, closer to it than to the render of scene `other`; else what is wrong."""
    background, obj = regions(frame.image)
    text = f"{name}: background {background.mean():.1%}, object {obj.mean():.1%}"
    if not (background.mean() > 0.3 and 0.01 < obj.mean() < 0.6):
        return text
    small = frame.at_render_resolution()
    own = masked_difference(small, model_render(model, frame.camera, name, frame.resolution))
    across = masked_difference(small, model_render(model, frame.camera, other, frame.resolution))
    text = f"{text}; difference to the model's render of {name}: {own:.3f}, of {other}: {across:.3f}"
    print(text)
    return None if own < 0.1 and own < 0.5 * across else text


def test_viewer_shows_the_decoded_object_and_switches_scene(chromium, trained_rgb_run, tmp_path):
    trainer, config_file = trained_rgb_run
    model = trainer.pipeline.model
    dataset = trainer.pipeline.datamanager.train_dataset
    scene_of_image = dataset.cameras.metadata["scene_index"].view(-1).tolist()
    colours = {
        name: object_colour(
            [dataset.get_image_float32(i)[..., :3].numpy() for i, s in enumerate(scene_of_image) if s == k]
        )
        for k, name in enumerate(model.scene_names)
    }
    first, second = model.scene_names[:2]
    # The check can only tell the scenes apart if their cars differ in colour.
    assert np.linalg.norm(colours[first] - colours[second]) > 0.25, colours

    frames = browse(chromium, config_file, model, first, second, tmp_path)
    for name, frame in frames.items():
        other = second if name == first else first
        shot = frame.image
        _, obj = regions(shot)
        info = f"{name}: {describe(shot, colours)}; screenshots in {tmp_path}"
        median = np.median(shot[obj], axis=0)
        assert np.linalg.norm(median - colours[name]) < 0.3, info
        assert np.linalg.norm(median - colours[name]) < np.linalg.norm(median - colours[other]), info


def test_viewer_shows_a_latent_run_decoded(chromium, trained_latent_run, tmp_path):
    """A latent-triplane run: what the browser shows is the autoencoder's decode of the selected scene's latent
    render, an object on the white background (a rough one: see the module docstring)."""
    trainer, config_file = trained_latent_run
    model = trainer.pipeline.model
    assert model.autoencoder.vae is not None and model.autoencoder.downsample_factor == 8
    first, second = model.scene_names[:2]
    browse(chromium, config_file, model, first, second, tmp_path)
