"""Drawing one synthetic pipe interior: the pipe, its water, stains and overlay text, and a painter per defect code (:data:`PAINTERS`); :func:`render_image` draws a whole image from its labels."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hybrid.data.synthetic.spec import MATERIALS, SyntheticSpec


class PipeScene:
    """A pipe seen along its axis: wall points are addressed by angle and depth.

    Angle 0 is the right wall and pi/2 the bottom (screen y points down). A wall point at depth
    ``z`` (1 = nearest visible ring) projects at screen radius ``R / z`` from the vanishing point.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        width: int,
        height: int,
        squash: tuple[float, float],
        water_level: int,
    ):
        self.rng = rng
        # Wall points with sin(angle) above this chord are under water.
        self.water_chord = 1 - 2 * water_level / 100 if water_level > 0 else 1.0
        self.width, self.height = width, height
        self.cx = width / 2 + rng.normal(0, width * 0.04)
        self.cy = height / 2 + rng.normal(0, height * 0.05)
        self.R = 0.72 * max(width, height)
        self.sx, self.sy = squash
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        dx, dy = (xx - self.cx) / self.sx, (yy - self.cy) / self.sy
        self.r = np.hypot(dx, dy) + 1e-3
        self.sin_theta = dy / self.r
        self.image = np.zeros((height, width, 3), np.float32)

    def point(self, theta: float, z: float) -> tuple[float, float]:
        """Screen position of the wall point at angle ``theta`` and depth ``z``."""
        r = self.R / z
        return self.cx + r * math.cos(theta) * self.sx, self.cy + r * math.sin(theta) * self.sy

    def mask(self, draw: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
        """Rasterize shapes drawn with PIL into a float mask in [0, 1]."""
        canvas = Image.new("L", (self.width, self.height), 0)
        draw(ImageDraw.Draw(canvas))
        return np.asarray(canvas, np.float32) / 255.0

    def blend(self, mask: np.ndarray, color, opacity: float = 1.0) -> None:
        """Paint ``color`` (RGB triple or HxWx3 array) where ``mask`` is set."""
        alpha = (mask * opacity)[..., None]
        self.image = self.image * (1 - alpha) + np.asarray(color, np.float32) * alpha

    def on_screen(self, x: float, y: float, margin: float = 0.08) -> bool:
        """Whether a point lies inside the frame, ``margin`` (fraction of the side) from its edges."""
        mx, my = margin * self.width, margin * self.height
        return mx <= x <= self.width - mx and my <= y <= self.height - my

    def spot(self, sides=(0.0, 2 * np.pi), depth=(1.3, 3.6)) -> tuple[float, float]:
        """A random wall point (angle, depth) that is visible, so every label has its defect."""
        for _ in range(50):
            theta, z = self.rng.uniform(*sides), self.rng.uniform(*depth)
            dry = math.sin(theta) < self.water_chord - 0.1
            if dry and self.on_screen(*self.point(theta, z)):
                return theta, z
        return theta, depth[1] * 1.5

    def joint(self, joint_depths: np.ndarray) -> float:
        """Depth of a joint whose whole ring is in the frame yet not too far to see."""
        half = min(self.width / self.sx, self.height / self.sy) / 2
        fits = [z for z in joint_depths if 0.45 * half <= self.R / z <= 0.95 * half]
        return float(self.rng.choice(fits)) if fits else self.R / (0.6 * half)


def ellipse_points(cx, cy, a, b, angle, rng=None, jitter=0.0, n=36) -> list[tuple[float, float]]:
    """Polygon of a rotated ellipse, optionally with a ragged outline."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    scale = 1 + (rng.uniform(-jitter, jitter, n) if rng is not None and jitter else 0)
    x, y = a * np.cos(t) * scale, b * np.sin(t) * scale
    ca, sa = math.cos(angle), math.sin(angle)
    return list(zip(cx + x * ca - y * sa, cy + x * sa + y * ca, strict=True))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    small = rng.random((max(2, height // cell), max(2, width // cell))).astype(np.float32)
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def render_pipe(scene: PipeScene, material: np.ndarray, joint_depths: np.ndarray) -> None:
    """Wall with light fall-off, texture, joints and the dark far end."""
    rng = scene.rng
    depth = scene.R / scene.r
    light = np.clip(1.25 / np.maximum(depth, 0.2) ** rng.uniform(0.65, 1.0), 0.0, 1.05)
    texture = 0.85 + 0.3 * _smooth_noise(rng, scene.height, scene.width, rng.integers(10, 28))
    grain = rng.normal(1.0, 0.04, scene.r.shape).astype(np.float32)
    wall = light * texture * grain
    for z in joint_depths:
        ring = scene.R / z
        wall *= 1 - 0.45 * np.exp(-(((scene.r - ring) / max(1.0, 0.018 * ring)) ** 2))
    far_end = np.clip((depth - 7.0) / 3.0, 0.0, 1.0)
    wall = wall * (1 - far_end) + 0.04 * far_end
    scene.image = wall[..., None] * material


def render_water(scene: PipeScene) -> None:
    """Fill the bottom: the ray through a pixel meets the water before the wall below a chord."""
    if scene.water_chord >= 1.0:
        return
    rng = scene.rng
    under = np.clip((scene.sin_theta - scene.water_chord) * 25, 0, 1) * (scene.r > 3)
    ripples = 0.85 + 0.15 * np.sin(np.arange(scene.height, dtype=np.float32)[:, None] * rng.uniform(0.5, 1.2))
    tint = np.array(rng.choice([(0.22, 0.24, 0.18), (0.30, 0.27, 0.20), (0.18, 0.20, 0.22)]), np.float32)
    light = np.clip(scene.r / scene.R * 1.4, 0.15, 1.0)
    water = (light * ripples)[..., None] * tint * rng.uniform(0.8, 1.3)
    scene.blend(under, water, opacity=rng.uniform(0.85, 1.0))


def render_stains(scene: PipeScene, count: int) -> None:
    """Harmless discoloration that is not a defect, so that darkness alone is no shortcut."""
    rng = scene.rng
    for _ in range(count):
        x, y = scene.point(rng.uniform(0, 2 * np.pi), rng.uniform(1.2, 4))
        size = rng.uniform(10, 40)
        outline = ellipse_points(x, y, size, size * 0.6, rng.uniform(0, 3), rng, 0.3)
        m = scene.mask(lambda d, outline=outline: d.polygon(outline, fill=255))
        scene.blend(m, scene.image * rng.uniform(0.75, 1.2), opacity=rng.uniform(0.2, 0.45))


def render_overlay_text(scene: PipeScene) -> None:
    """On-screen display like an inspection camera's (date, distance)."""
    rng = scene.rng
    canvas = Image.new("L", (scene.width, scene.height), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    lines = [f"{rng.integers(1, 29):02d}.{rng.integers(1, 13):02d}.20{rng.integers(5, 20):02d}",
             f"{rng.uniform(0, 120):.2f} m", f"ST{rng.integers(100, 9999)}"]  # fmt: skip
    y = rng.choice([4, scene.height - 14 * len(lines) - 4])
    for line in lines[: rng.integers(1, 4)]:
        draw.text((6, y), line, fill=255, font=font)
        y += 13
    scene.blend(np.asarray(canvas, np.float32) / 255.0, (0.95, 0.95, 0.9))


def paint_crack(scene, rng, c, **_):
    theta, z = scene.spot(depth=(1.3, 2.8))
    pts = []
    if rng.random() < 0.5:  # around the circumference
        for t in np.linspace(theta, theta + rng.uniform(0.9, 2.2), 14):
            pts.append(scene.point(t, z * rng.uniform(0.97, 1.03)))
    else:  # along the pipe
        for zz in np.linspace(z, z * rng.uniform(1.6, 2.6), 14):
            pts.append(scene.point(theta + rng.normal(0, 0.04), zz))
    width = max(3, int(scene.R / z * 0.04))
    scene.blend(scene.mask(lambda d: d.line(pts, fill=255, width=width, joint="curve")), (0.05, 0.04, 0.04), c)


def paint_surface_damage(scene, rng, c, **_):
    x, y = scene.point(*scene.spot())
    size = rng.uniform(28, 60)
    m = scene.mask(
        lambda d: d.polygon(
            ellipse_points(x, y, size, size * rng.uniform(0.5, 0.9), rng.uniform(0, 3), rng, 0.35), fill=255
        )
    )
    speckle = rng.random(m.shape).astype(np.float32)
    aggregate = np.where(speckle[..., None] > 0.55, (0.78, 0.74, 0.66), (0.30, 0.28, 0.25)).astype(np.float32)
    scene.blend(m, aggregate, c)


def paint_production_error(scene, rng, c, **_):
    theta, z = scene.spot()
    x, y = scene.point(theta, z)
    a, b = rng.uniform(26, 50), rng.uniform(13, 24)
    off = 0.25 * a
    shadow = scene.mask(lambda d: d.polygon(ellipse_points(x + off, y + off, a, b, theta + np.pi / 2), fill=255))
    bump = scene.mask(lambda d: d.polygon(ellipse_points(x, y, a, b, theta + np.pi / 2, rng, 0.1), fill=255))
    scene.blend(shadow, (0.08, 0.07, 0.06), c)
    scene.blend(bump, (0.85, 0.82, 0.74), c)


def paint_deformation(scene, rng, c, **_):
    """The squashed geometry is set up front (see ``render_image``); add the buckled crease."""
    theta = rng.choice([0.0, np.pi]) + rng.normal(0, 0.3)
    pts = [scene.point(theta + rng.normal(0, 0.05), zz) for zz in np.linspace(1.1, 4.0, 10)]
    scene.blend(scene.mask(lambda d: d.line(pts, fill=255, width=6, joint="curve")), (0.06, 0.05, 0.05), c)


def paint_displaced_joint(scene, rng, c, joint_depths, **_):
    r = scene.R / scene.joint(joint_depths)
    shift = r * rng.uniform(0.1, 0.2)
    angle = rng.uniform(0, 2 * np.pi)
    ox, oy = scene.cx + shift * math.cos(angle), scene.cy + shift * math.sin(angle)
    outer = scene.mask(
        lambda d: d.polygon(ellipse_points(ox, oy, r * scene.sx * 1.02, r * scene.sy * 1.02, 0), fill=255)
    )
    inner = scene.mask(lambda d: d.polygon(ellipse_points(scene.cx, scene.cy, r * scene.sx, r * scene.sy, 0), fill=255))
    scene.blend(np.clip(outer - inner, 0, 1), (0.03, 0.03, 0.03), c)


def paint_intruding_sealing(scene, rng, c, joint_depths, **_):
    z = scene.joint(joint_depths)
    length = rng.uniform(0.8, 2.0)
    start = rng.uniform(np.pi, 2 * np.pi - length)  # sealing rings sag from the crown
    span = np.linspace(start, start + length, 20)
    sag = rng.uniform(1.2, 1.45)
    outer = [scene.point(t, z) for t in span]
    inner = [scene.point(t, z * (1 + (sag - 1) * math.sin(np.pi * i / 19) + 0.04)) for i, t in enumerate(span)]
    color = (0.9, 0.9, 0.85) if rng.random() < 0.4 else (0.07, 0.07, 0.08)
    scene.blend(scene.mask(lambda d: d.polygon(outer + inner[::-1], fill=255)), color, c)


def paint_roots(scene, rng, c, joint_depths, **_):
    z = scene.joint(joint_depths)
    x0, y0 = scene.point(rng.uniform(0, 2 * np.pi), z)
    towards = math.atan2(scene.cy - y0, scene.cx - x0)
    segments = []

    def grow(x, y, heading, length, width, depth):
        if depth == 0 or length < 3:
            return
        x1 = x + length * math.cos(heading)
        y1 = y + length * math.sin(heading)
        segments.append(((x, y, x1, y1), max(1, int(width))))
        for _ in range(rng.integers(1, 4)):
            grow(x1, y1, heading + rng.normal(0, 0.6), length * rng.uniform(0.55, 0.8), width * 0.7, depth - 1)

    for _ in range(rng.integers(3, 6)):
        grow(x0, y0, towards + rng.normal(0, 0.7), rng.uniform(22, 40), rng.uniform(3, 6), 5)

    def draw(d):
        for line, width in segments:
            d.line(line, fill=255, width=width)

    scene.blend(scene.mask(draw), (0.62, 0.48, 0.30), c)


def paint_infiltration(scene, rng, c, **_):
    theta, z = scene.spot(sides=(np.pi * 1.15, np.pi * 1.85), depth=(1.3, 3.0))
    streaks = []
    for _ in range(rng.integers(5, 10)):
        t0 = theta + rng.normal(0, 0.12)
        end = np.pi / 2 + (np.pi if math.cos(t0) < 0 else 0) * 1.0
        path = np.linspace(t0, t0 + (end - t0) * rng.uniform(0.3, 0.7), 14)
        streaks.append([scene.point(t, z * rng.uniform(0.98, 1.02)) for t in path])

    def draw(d):
        for pts in streaks:
            d.line(pts, fill=255, width=4)

    scene.blend(scene.mask(draw), (0.86, 0.92, 0.97), c)
    x, y = scene.point(theta, z)
    sheen = scene.mask(lambda d: d.polygon(ellipse_points(x, y, 34, 16, theta + np.pi / 2, rng, 0.2), fill=255))
    scene.blend(sheen, (0.8, 0.85, 0.9), 0.5 * c)


def paint_settled_deposits(scene, rng, c, **_):
    z_near, z_far = rng.uniform(1.3, 2.2), rng.uniform(3.0, 6.0)
    half = rng.uniform(0.35, 0.8)
    base = [scene.point(np.pi / 2 + t, z_near) for t in np.linspace(-half, half, 12)]
    top = [scene.point(np.pi / 2 + t, z_far) for t in np.linspace(half, -half, 12)]
    crest = [(x, y - rng.uniform(0, 12)) for x, y in top]
    m = scene.mask(lambda d: d.polygon(base + crest, fill=255))
    sand = np.array(rng.choice([(0.55, 0.48, 0.36), (0.45, 0.43, 0.40), (0.50, 0.40, 0.30)]), np.float32)
    grain = rng.uniform(0.7, 1.2, m.shape).astype(np.float32)[..., None] * sand
    scene.blend(m, grain, c)


def paint_attached_deposits(scene, rng, c, **_):
    theta, z = scene.spot(sides=(np.pi, 2 * np.pi))
    x0, y0 = scene.point(theta, z)
    color = (0.82, 0.8, 0.7) if rng.random() < 0.6 else (0.2, 0.22, 0.16)
    blobs = [(x0 + rng.normal(0, 26), y0 + rng.normal(0, 16), rng.uniform(5, 13)) for _ in range(rng.integers(8, 20))]

    def draw(d):
        for x, y, s in blobs:
            d.ellipse((x - s, y - s * 0.8, x + s, y + s * 0.8), fill=255)

    scene.blend(scene.mask(draw), color, c)


def paint_obstacle(scene, rng, c, **_):
    theta, z = scene.spot(sides=(np.pi / 2 - 0.4, np.pi / 2 + 0.4), depth=(1.5, 3.5))
    x, y = scene.point(theta, z)
    size = scene.R / z * rng.uniform(0.3, 0.5)
    pts = ellipse_points(
        x, y - size * 0.4, size, size * rng.uniform(0.5, 0.9), rng.uniform(-0.4, 0.4), rng, 0.25, n=rng.integers(5, 8)
    )
    body = np.array(rng.choice([(0.35, 0.3, 0.25), (0.6, 0.2, 0.15), (0.75, 0.7, 0.5), (0.2, 0.25, 0.35)]), np.float32)
    scene.blend(scene.mask(lambda d: d.polygon(pts, fill=255)), body, c)
    lit = [(px, py) for px, py in pts if py < y - size * 0.4] or pts[:3]
    if len(lit) >= 3:
        scene.blend(scene.mask(lambda d: d.polygon(lit, fill=255)), body * 1.4, 0.5 * c)


def _connection_site(scene, rng) -> tuple[float, float, float, float, float]:
    """A lateral opening on the side or upper wall: centre, tangential and radial half-axes."""
    side = rng.choice([0.0, np.pi])
    upward = -1 if side == 0.0 else 1  # towards the crown, away from the water
    theta, z = scene.spot(sides=sorted((side + 0.3 * -upward, side + 0.9 * upward)), depth=(1.3, 2.6))
    x, y = scene.point(theta, z)
    a = scene.R / z * rng.uniform(0.2, 0.32)
    return x, y, a, a * rng.uniform(0.45, 0.7), theta + np.pi / 2


def _hole(scene, x, y, a, b, angle, c, rng=None, jitter=0.0):
    hole = scene.mask(lambda d: d.polygon(ellipse_points(x, y, a, b, angle, rng, jitter), fill=255))
    scene.blend(hole, (0.02, 0.02, 0.02), c)


def _rim(scene, x, y, a, b, angle, width, color, c):
    outline = ellipse_points(x, y, a, b, angle)
    scene.blend(scene.mask(lambda d: d.line(outline + outline[:1], fill=255, width=width)), color, c)


def paint_branch(scene, rng, c, **_):
    x, y, a, b, ang = _connection_site(scene, rng)
    _rim(scene, x, y, a * 1.12, b * 1.12, ang, 3, (0.7, 0.68, 0.62), c)
    _hole(scene, x, y, a, b, ang, c)


def paint_chiseled(scene, rng, c, **_):
    x, y, a, b, ang = _connection_site(scene, rng)
    broken = scene.mask(lambda d: d.polygon(ellipse_points(x, y, a * 1.5, b * 1.5, ang, rng, 0.3), fill=255))
    scene.blend(broken, (0.7, 0.66, 0.58), 0.8 * c)
    _hole(scene, x, y, a, b, ang, c, rng, 0.3)


def paint_drilled(scene, rng, c, **_):
    x, y, a, b, ang = _connection_site(scene, rng)
    _rim(scene, x, y, a * 1.05, b * 1.05, ang, 2, (0.95, 0.95, 0.93), c)
    _hole(scene, x, y, a, b, ang, c)


def paint_reinstatement_cut(scene, rng, c, **_):
    x, y, a, b, ang = _connection_site(scene, rng)
    _hole(scene, x, y, a, b, ang, c)
    flap = scene.mask(
        lambda d: d.polygon(
            ellipse_points(x + a * 0.3 * math.cos(ang), y + a * 0.3 * math.sin(ang), a * 0.7, b * 0.8, ang, rng, 0.15),
            fill=255,
        )
    )
    scene.blend(flap, (0.88, 0.86, 0.8), c)
    cuts = [(x + a * 1.3 * math.cos(t), y + b * 1.3 * math.sin(t)) for t in np.linspace(0, 2 * np.pi, 7)]
    scene.blend(
        scene.mask(lambda d: [d.line((x, y, cx, cy), fill=255, width=1) for cx, cy in cuts]),
        (0.95, 0.95, 0.95),
        0.8 * c,
    )


def paint_transition_profile(scene, rng, c, **_):
    x, y, a, b, ang = _connection_site(scene, rng)
    for scale, shade in ((1.8, 0.75), (1.5, 0.55), (1.25, 0.35)):
        collar = scene.mask(lambda d, s=scale: d.polygon(ellipse_points(x, y, a * s, b * s, ang), fill=255))
        scene.blend(collar, (shade, shade * 0.97, shade * 0.9), c)
    _hole(scene, x, y, a, b, ang, c)


def paint_construction_change(scene, rng, c, **_):
    x, y, a, b, ang = _connection_site(scene, rng)
    ca, sa = math.cos(ang), math.sin(ang)

    def rect(s):
        corners = [(-a * s, -b * s), (a * s, -b * s), (a * s, b * s), (-a * s, b * s)]
        return [(x + px * ca - py * sa, y + px * sa + py * ca) for px, py in corners]

    scene.blend(scene.mask(lambda d: d.polygon(rect(1.35), fill=255)), (0.6, 0.3, 0.22), c)
    scene.blend(scene.mask(lambda d: d.polygon(rect(1.0), fill=255)), (0.02, 0.02, 0.02), c)


PAINTERS: dict[str, Callable] = {
    "RB": paint_crack, "OB": paint_surface_damage, "PF": paint_production_error,
    "DE": paint_deformation, "FS": paint_displaced_joint, "IS": paint_intruding_sealing,
    "RO": paint_roots, "IN": paint_infiltration, "AF": paint_settled_deposits,
    "BE": paint_attached_deposits, "FO": paint_obstacle, "GR": paint_branch,
    "PH": paint_chiseled, "PB": paint_drilled, "OS": paint_reinstatement_cut,
    "OP": paint_transition_profile, "OK": paint_construction_change,
}  # fmt: skip


# Drawn over the water rather than hidden by it.
ABOVE_WATER = {"AF", "FO"}


def render_image(
    rng: np.random.Generator,
    codes: list[str],
    water_level: int,
    spec: SyntheticSpec,
    defect_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One ``H x W x 3`` uint8 frame showing ``codes`` (none: a normal pipe).

    ``defect_rng`` (default: ``rng``) draws where and how the defects are painted; with its own
    generator the pipe (material, joints, water, text, exposure) depends on ``rng`` alone, so one
    pipe can be shown with and without defects (the synthetic videos).
    """
    painter_rng = defect_rng or rng
    if "DE" in codes:
        amount = painter_rng.uniform(0.55, 0.72)
        squash = (1.0, amount) if painter_rng.random() < 0.7 else (amount, 1.0)
    else:
        squash = (rng.uniform(0.95, 1.05), rng.uniform(0.95, 1.05))
    scene = PipeScene(rng, spec.width, spec.height, squash, water_level)
    name = rng.choice(list(MATERIALS))
    material = np.array(MATERIALS[name], np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    joint_spacing = rng.uniform(0.5, 1.1)
    joint_depths = rng.uniform(1.0, 1.0 + joint_spacing) + joint_spacing * np.arange(10)
    render_pipe(scene, material, joint_depths)
    render_stains(scene, rng.integers(0, 4))
    contrasts = {code: painter_rng.uniform(spec.min_contrast, 1.0) for code in codes}

    def paint(selected):
        scene.rng = painter_rng  # spot() draws the defect's place from the painter's generator
        for code in selected:
            PAINTERS[code](scene, painter_rng, contrasts[code], joint_depths=joint_depths)
        scene.rng = rng

    paint([code for code in codes if code not in ABOVE_WATER])
    render_water(scene)
    paint([code for code in codes if code in ABOVE_WATER])
    if rng.random() < 0.7:
        render_overlay_text(scene)
    gain = rng.uniform(0.75, 1.2)
    noisy = scene.image * gain + rng.normal(0, 0.015, scene.image.shape).astype(np.float32)
    return (np.clip(noisy, 0, 1) * 255).astype(np.uint8)
