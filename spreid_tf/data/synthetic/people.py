"""A procedural person renderer: images with an exact LIP-style parsing mask.

An identity is a seeded set of clothes: hair and skin colours, upper clothes (plain,
stripes or checks; short or long sleeves), pants (long or short) or a skirt, shoe
colour, and maybe a hat, sunglasses or a bag. A camera is a seeded colour cast,
brightness, background (plain, gradient or noise), scale and horizontal shift. Each
rendering also varies the pose a little (arm and leg angles, shift, scale), so the
same identity looks alike across images and cameras, and different identities differ
by colour and texture: a small re-id model can learn them.

    person = make_identity(7)
    camera = make_camera(2)
    rgb, mask = render_person(person, camera, height=128, width=64, rng=np.random.default_rng(0))

The mask holds LIP labels (spreid_tf.lip): 0 background, 1 hat, 2 hair, 4 sunglasses,
5 upper-clothes, 9 pants, 12 skirt, 13 face, 14/15 left/right arm, 16/17 left/right leg,
18/19 left/right shoe. The person faces the camera, so the person's left limbs appear
on the image's right side. A bag is not a LIP label: its pixels are background.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

HAT, HAIR, SUNGLASSES, UPPER, PANTS, SKIRT, FACE = 1, 2, 4, 5, 9, 12, 13
LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = 14, 15, 16, 17, 18, 19

_SKIN_TONES = np.array([[255, 224, 196], [234, 192, 160], [198, 150, 110], [150, 100, 70], [95, 62, 45]])
_HAIR_TONES = np.array([[20, 15, 10], [70, 45, 25], [140, 100, 50], [220, 190, 120], [150, 150, 150], [120, 40, 20]])


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated random colour (HSV with spread-out hue)."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(60, 256)]]], np.uint8)
    if rng.random() < 0.2:  # some grey, black and white clothes
        hsv[0, 0, 1] = rng.integers(0, 30)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Identity:
    """What a person wears (all colours RGB float32)."""

    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    upper: np.ndarray
    upper2: np.ndarray
    upper_pattern: str  # "plain" | "stripes" | "checks"
    pattern_period: int
    long_sleeves: bool
    lower: np.ndarray
    lower_kind: str  # "pants" | "shorts" | "skirt"
    lower_pattern: str  # "plain" | "stripes"
    shoes: np.ndarray
    hat: np.ndarray | None
    sunglasses: bool
    bag: np.ndarray | None
    width_factor: float
    height_factor: float


@dataclasses.dataclass(frozen=True)
class Camera:
    """How a camera sees people."""

    gain: np.ndarray  # per-channel colour cast
    brightness: float
    background: str  # "plain" | "gradient" | "noise"
    bg1: np.ndarray
    bg2: np.ndarray
    scale: float  # person height / image height
    shift: float  # horizontal shift, fraction of width
    noise: float
    blur: bool


@functools.lru_cache(maxsize=4096)
def make_identity(seed: int) -> Identity:
    """The identity of seed `seed` (the same seed always gives the same clothes)."""
    rng = np.random.default_rng([seed, 1])
    return Identity(
        skin=_SKIN_TONES[rng.integers(len(_SKIN_TONES))].astype(np.float32),
        hair=_HAIR_TONES[rng.integers(len(_HAIR_TONES))].astype(np.float32),
        long_hair=bool(rng.random() < 0.35),
        upper=_colour(rng),
        upper2=_colour(rng),
        upper_pattern=str(rng.choice(["plain", "plain", "stripes", "checks"])),
        pattern_period=int(rng.integers(3, 7)),
        long_sleeves=bool(rng.random() < 0.5),
        lower=_colour(rng),
        lower_kind=str(rng.choice(["pants", "pants", "shorts", "skirt"])),
        lower_pattern=str(rng.choice(["plain", "plain", "plain", "stripes"])),
        shoes=_colour(rng) * 0.6,
        hat=_colour(rng) if rng.random() < 0.2 else None,
        sunglasses=bool(rng.random() < 0.1),
        bag=_colour(rng) if rng.random() < 0.3 else None,
        width_factor=float(rng.uniform(0.85, 1.15)),
        height_factor=float(rng.uniform(0.92, 1.0)),
    )


@functools.lru_cache(maxsize=1024)
def make_camera(seed: int) -> Camera:
    """The camera of seed `seed`."""
    rng = np.random.default_rng([seed, 2])
    return Camera(
        gain=rng.uniform(0.8, 1.2, 3).astype(np.float32),
        brightness=float(rng.uniform(0.75, 1.15)),
        background=str(rng.choice(["plain", "gradient", "noise"])),
        bg1=rng.uniform(40, 220, 3).astype(np.float32),
        bg2=rng.uniform(40, 220, 3).astype(np.float32),
        scale=float(rng.uniform(0.82, 0.95)),
        shift=float(rng.uniform(-0.06, 0.06)),
        noise=float(rng.uniform(2, 8)),
        blur=bool(rng.random() < 0.4),
    )


def _texture(kind: str, c1: np.ndarray, c2: np.ndarray, period: int, shape: tuple[int, int],
             phase: int) -> np.ndarray:
    h, w = shape
    if kind == "plain":
        return np.broadcast_to(c1, (h, w, 3))
    rows = ((np.arange(h)[:, None] + phase) // period) % 2
    cols = (np.arange(w)[None, :] // period) % 2 if kind == "checks" else np.zeros((1, w), int)
    pick = (rows + cols) % 2 == 0
    return np.where(pick[..., None], c1, c2).astype(np.float32)


def _limb(label_map: np.ndarray, p0, p1, thickness: int, label: int) -> None:
    cv2.line(label_map, tuple(int(v) for v in p0), tuple(int(v) for v in p1), int(label),
             max(1, int(thickness)), lineType=cv2.LINE_8)


def render_person(identity: Identity, camera: Camera, height: int = 128, width: int = 64,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Renders one image of `identity` seen by `camera`.

    Args:
        identity: from make_identity.
        camera: from make_camera.
        height, width: image size in pixels.
        rng: varies pose, shift and noise between images; None -> fixed pose.

    Returns:
        (rgb uint8 [height, width, 3], mask uint8 [height, width] of LIP labels).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    mask = np.zeros((height, width), np.uint8)
    ph = height * camera.scale * identity.height_factor * rng.uniform(0.95, 1.03)
    top = (height - ph) * rng.uniform(0.3, 0.7)
    cx = width * (0.5 + camera.shift + rng.uniform(-0.04, 0.04))
    bw = ph * 0.11 * identity.width_factor  # half torso width

    def y(f: float) -> float:
        return top + f * ph

    head_c = (cx, y(0.085))
    head_ax = (max(2, ph * 0.05), max(2, ph * 0.065))
    shoulder_y, hip_y, knee_y, ankle_y = y(0.19), y(0.52), y(0.72), y(0.94)
    limb_w = max(2, ph * 0.055)

    # Legs and shoes (behind the clothes). Image left = person's right.
    spread = rng.uniform(0.2, 0.9) * bw
    legs = {RIGHT_LEG: (cx - bw * 0.45, cx - spread), LEFT_LEG: (cx + bw * 0.45, cx + spread)}
    shoes = {RIGHT_LEG: RIGHT_SHOE, LEFT_LEG: LEFT_SHOE}
    for label, (hx, ax) in legs.items():
        _limb(mask, (hx, hip_y), (ax, ankle_y), limb_w * 1.1, label)
        cv2.ellipse(mask, (int(ax + (bw * 0.1 if label == LEFT_LEG else -bw * 0.1)), int(ankle_y + ph * 0.02)),
                    (int(max(1, ph * 0.04)), int(max(1, ph * 0.022))), 0, 0, 360, shoes[label], -1)
    # Lower clothes.
    if identity.lower_kind == "skirt":
        pts = np.array([[cx - bw, hip_y - ph * 0.02], [cx + bw, hip_y - ph * 0.02],
                        [cx + bw * 1.35, y(0.7)], [cx - bw * 1.35, y(0.7)]], np.int32)
        cv2.fillPoly(mask, [pts], SKIRT)
    else:
        end = ankle_y - ph * 0.01 if identity.lower_kind == "pants" else (hip_y + knee_y) / 2 + ph * 0.03
        for hx, ax in legs.values():
            t = (end - hip_y) / (ankle_y - hip_y)
            _limb(mask, (hx, hip_y), (hx + (ax - hx) * t, end), limb_w * 1.35, PANTS)
        cv2.rectangle(mask, (int(cx - bw), int(hip_y - ph * 0.03)), (int(cx + bw), int(hip_y + ph * 0.05)),
                      PANTS, -1)
    # Long hair behind the torso.
    if identity.long_hair:
        cv2.rectangle(mask, (int(cx - head_ax[0] * 1.1), int(head_c[1])),
                      (int(cx + head_ax[0] * 1.1), int(y(0.25))), HAIR, -1)
    # Torso.
    torso = np.array([[cx - bw * 1.05, shoulder_y], [cx + bw * 1.05, shoulder_y],
                      [cx + bw * 0.95, hip_y], [cx - bw * 0.95, hip_y]], np.int32)
    cv2.fillPoly(mask, [torso], UPPER)
    # Arms: sleeve (upper clothes) then skin.
    for label, side in ((RIGHT_ARM, -1), (LEFT_ARM, 1)):
        angle = np.deg2rad(rng.uniform(4, 22))
        sx, sy = cx + side * bw * 1.05, shoulder_y + ph * 0.015
        length = ph * 0.33
        hx, hy = sx + side * np.sin(angle) * length, sy + np.cos(angle) * length
        _limb(mask, (sx, sy), (hx, hy), limb_w, label)
        sleeve = 1.0 if identity.long_sleeves else 0.35
        _limb(mask, (sx, sy), (sx + (hx - sx) * sleeve, sy + (hy - sy) * sleeve), limb_w * 1.15, UPPER)
    # Neck and head.
    cv2.rectangle(mask, (int(cx - head_ax[0] * 0.4), int(head_c[1])), (int(cx + head_ax[0] * 0.4),
                  int(shoulder_y + 1)), FACE, -1)
    cv2.ellipse(mask, (int(head_c[0]), int(head_c[1])), (int(head_ax[0]), int(head_ax[1])), 0, 0, 360, FACE, -1)
    cv2.ellipse(mask, (int(head_c[0]), int(head_c[1] - head_ax[1] * 0.2)),
                (int(head_ax[0] * 1.05), int(head_ax[1] * 0.85)), 0, 180, 360, HAIR, -1)
    if identity.sunglasses:
        cv2.rectangle(mask, (int(cx - head_ax[0] * 0.8), int(head_c[1] - head_ax[1] * 0.1)),
                      (int(cx + head_ax[0] * 0.8), int(head_c[1] + head_ax[1] * 0.15)), SUNGLASSES, -1)
    if identity.hat is not None:
        cv2.ellipse(mask, (int(head_c[0]), int(head_c[1] - head_ax[1] * 0.45)),
                    (int(head_ax[0] * 1.25), int(head_ax[1] * 0.6)), 0, 180, 360, HAT, -1)

    # Colours.
    colours = {HAT: identity.hat, HAIR: identity.hair, SUNGLASSES: np.array([15, 15, 20], np.float32),
               FACE: identity.skin, LEFT_ARM: identity.skin, RIGHT_ARM: identity.skin,
               LEFT_LEG: identity.skin, RIGHT_LEG: identity.skin,
               LEFT_SHOE: identity.shoes, RIGHT_SHOE: identity.shoes}
    rgb = np.zeros((height, width, 3), np.float32)
    for label, colour in colours.items():
        if colour is not None:
            rgb[mask == label] = colour
    phase = int(rng.integers(0, identity.pattern_period))
    upper_tex = _texture(identity.upper_pattern, identity.upper, identity.upper2,
                         identity.pattern_period, (height, width), phase)
    lower_tex = _texture(identity.lower_pattern, identity.lower, identity.lower * 0.6,
                         identity.pattern_period + 1, (height, width), phase)
    rgb[mask == UPPER] = upper_tex[mask == UPPER]
    for label in (PANTS, SKIRT):
        rgb[mask == label] = lower_tex[mask == label]

    # Background.
    if camera.background == "gradient":
        t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        background = camera.bg1 * (1 - t) + camera.bg2 * t
        background = np.broadcast_to(background, (height, width, 3))
    elif camera.background == "noise":
        background = camera.bg1 + rng.normal(0, 25, (height, width, 1)).astype(np.float32)
    else:
        background = np.broadcast_to(camera.bg1, (height, width, 3))
    rgb = np.where((mask == 0)[..., None], background, rgb)
    # A bag hides part of the person; LIP has no bag label, so it is background.
    if identity.bag is not None:
        bx = int(cx + bw * rng.choice([-1.1, 0.7]))
        bag = (slice(int(y(0.38)), int(y(0.52))), slice(max(0, bx), max(0, bx + int(bw * 0.6) + 1)))
        mask[bag] = 0
        rgb[bag] = identity.bag

    # Lighting, cast, blur and sensor noise.
    rgb = rgb * camera.gain * camera.brightness * rng.uniform(0.92, 1.08)
    if camera.blur:
        rgb = cv2.GaussianBlur(rgb, (3, 3), 0.7)
    rgb = rgb + rng.normal(0, camera.noise, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def render(person_seed: int, camera_seed: int, image_seed: int, height: int = 128,
           width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Shorthand: render_person(make_identity(person_seed), make_camera(camera_seed), ...)."""
    return render_person(make_identity(person_seed), make_camera(camera_seed), height, width,
                         np.random.default_rng([person_seed, camera_seed, image_seed]))
