"""Product images that carry the article's signal: silhouette = product type, fill = colour group,
texture = graphical appearance. Small JPEGs with fixed quality and no metadata, so bytes are
deterministic; about 0.4% of articles get no file, like the real image folder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hm_recsys import schema

BACKGROUND = 238.0
JPEG_QUALITY = 90

# Silhouettes in unit coordinates: list of ("poly", points) / ("ellipse", box) / ("line", points, width).
_TSHIRT = [(0.3, 0.15), (0.42, 0.12), (0.5, 0.18), (0.58, 0.12), (0.7, 0.15), (0.9, 0.3), (0.8, 0.42),
           (0.72, 0.36), (0.72, 0.88), (0.28, 0.88), (0.28, 0.36), (0.2, 0.42), (0.1, 0.3)]
_LONGTOP = [(0.3, 0.15), (0.42, 0.12), (0.5, 0.18), (0.58, 0.12), (0.7, 0.15), (0.88, 0.75), (0.8, 0.78),
            (0.7, 0.42), (0.7, 0.88), (0.3, 0.88), (0.3, 0.42), (0.2, 0.78), (0.12, 0.75)]
_WIDETOP = [(0.28, 0.14), (0.42, 0.1), (0.5, 0.16), (0.58, 0.1), (0.72, 0.14), (0.92, 0.8), (0.82, 0.84),
            (0.74, 0.45), (0.76, 0.9), (0.24, 0.9), (0.26, 0.45), (0.18, 0.84), (0.08, 0.8)]
_TROUSERS = [(0.3, 0.1), (0.7, 0.1), (0.75, 0.92), (0.56, 0.92), (0.5, 0.35), (0.44, 0.92), (0.25, 0.92)]
_VEST = [(0.35, 0.1), (0.4, 0.1), (0.42, 0.3), (0.58, 0.3), (0.6, 0.1), (0.65, 0.1), (0.7, 0.35), (0.7, 0.88),
         (0.3, 0.88), (0.3, 0.35)]
SHAPES: dict[str, list[tuple]] = {
    "tshirt": [("poly", _TSHIRT)],
    "top": [("poly", _LONGTOP)],
    "vest": [("poly", _VEST)],
    "blouse": [("poly", _LONGTOP), ("cut", [(0.42, 0.12), (0.58, 0.12), (0.5, 0.3)])],
    "shirt": [("poly", _LONGTOP), ("line", [(0.5, 0.18), (0.5, 0.88)], 0.02),
              ("poly", [(0.4, 0.1), (0.5, 0.2), (0.6, 0.1), (0.62, 0.16), (0.5, 0.24), (0.38, 0.16)])],
    "sweater": [("poly", _WIDETOP), ("band", (0.24, 0.82, 0.76, 0.9))],
    "cardigan": [("poly", _WIDETOP), ("line", [(0.5, 0.16), (0.5, 0.9)], 0.025)],
    "hoodie": [("poly", _WIDETOP), ("ellipse", (0.36, 0.02, 0.64, 0.24)), ("band", (0.36, 0.6, 0.64, 0.75))],
    "jacket": [("poly", _WIDETOP), ("line", [(0.5, 0.14), (0.5, 0.9)], 0.03),
               ("cut", [(0.42, 0.1), (0.58, 0.1), (0.5, 0.35)])],
    "coat": [("poly", [(0.28, 0.1), (0.42, 0.06), (0.5, 0.12), (0.58, 0.06), (0.72, 0.1), (0.9, 0.7),
                       (0.82, 0.73), (0.76, 0.4), (0.8, 0.97), (0.2, 0.97), (0.24, 0.4), (0.18, 0.73),
                       (0.1, 0.7)]), ("cut", [(0.42, 0.06), (0.58, 0.06), (0.5, 0.4)])],
    "blazer": [("poly", _WIDETOP), ("cut", [(0.4, 0.1), (0.6, 0.1), (0.5, 0.48)]),
               ("band", (0.3, 0.6, 0.42, 0.63))],
    "bodysuit": [("poly", [(0.35, 0.1), (0.4, 0.1), (0.42, 0.28), (0.58, 0.28), (0.6, 0.1), (0.65, 0.1),
                           (0.7, 0.35), (0.7, 0.7), (0.56, 0.88), (0.44, 0.88), (0.3, 0.7), (0.3, 0.35)])],
    "trousers": [("poly", _TROUSERS)],
    "shorts": [("poly", [(0.28, 0.25), (0.72, 0.25), (0.77, 0.62), (0.54, 0.62), (0.5, 0.45), (0.46, 0.62),
                         (0.23, 0.62)])],
    "skirt": [("poly", [(0.36, 0.2), (0.64, 0.2), (0.8, 0.78), (0.2, 0.78)])],
    "leggings": [("poly", [(0.36, 0.06), (0.64, 0.06), (0.62, 0.95), (0.53, 0.95), (0.5, 0.3), (0.47, 0.95),
                           (0.38, 0.95)])],
    "dress": [("poly", [(0.38, 0.06), (0.43, 0.06), (0.45, 0.2), (0.55, 0.2), (0.57, 0.06), (0.62, 0.06),
                        (0.64, 0.4), (0.84, 0.94), (0.16, 0.94), (0.36, 0.4)])],
    "jumpsuit": [("poly", [(0.36, 0.05), (0.41, 0.05), (0.43, 0.2), (0.57, 0.2), (0.59, 0.05), (0.64, 0.05),
                           (0.67, 0.45), (0.72, 0.95), (0.55, 0.95), (0.5, 0.55), (0.45, 0.95), (0.28, 0.95),
                           (0.33, 0.45)])],
    "garmentset": [("poly", [(p[0], p[1] * 0.5) for p in _TSHIRT]),
                   ("poly", [(p[0], 0.48 + p[1] * 0.5) for p in _TROUSERS])],
    "pyjama": [("poly", [(0.02 + p[0] * 0.5, 0.1 + p[1] * 0.8) for p in _LONGTOP]),
               ("poly", [(0.48 + p[0] * 0.5, 0.1 + p[1] * 0.8) for p in _TROUSERS])],
    "bra": [("ellipse", (0.22, 0.36, 0.5, 0.62)), ("ellipse", (0.5, 0.36, 0.78, 0.62)),
            ("band", (0.18, 0.56, 0.82, 0.64)), ("line", [(0.3, 0.38), (0.33, 0.15)], 0.02),
            ("line", [(0.7, 0.38), (0.67, 0.15)], 0.02)],
    "brief": [("poly", [(0.22, 0.34), (0.78, 0.34), (0.74, 0.46), (0.57, 0.7), (0.43, 0.7), (0.26, 0.46)])],
    "swimsuit": [("poly", [(0.37, 0.12), (0.42, 0.12), (0.45, 0.34), (0.55, 0.34), (0.58, 0.12), (0.63, 0.12),
                           (0.67, 0.45), (0.64, 0.76), (0.5, 0.86), (0.36, 0.76), (0.33, 0.45)])],
    "socks": [("poly", [(0.38, 0.08), (0.58, 0.08), (0.58, 0.66), (0.8, 0.76), (0.76, 0.9), (0.38, 0.86)])],
    "earring": [("ellipse", (0.25, 0.45, 0.42, 0.62)), ("ellipse", (0.58, 0.45, 0.75, 0.62)),
                ("line", [(0.335, 0.3), (0.335, 0.46)], 0.02), ("line", [(0.665, 0.3), (0.665, 0.46)], 0.02)],
    "necklace": [("ring", (0.2, 0.1, 0.8, 0.7), 0.03), ("ellipse", (0.44, 0.62, 0.56, 0.76))],
    "beanie": [("chord", (0.2, 0.25, 0.8, 0.95)), ("band", (0.2, 0.58, 0.8, 0.7)),
               ("ellipse", (0.43, 0.14, 0.57, 0.28))],
    "cap": [("chord", (0.22, 0.3, 0.72, 0.9)), ("poly", [(0.6, 0.54), (0.92, 0.58), (0.9, 0.64), (0.6, 0.62)])],
    "scarf": [("poly", [(0.2, 0.05), (0.42, 0.05), (0.8, 0.9), (0.58, 0.95)])],
    "gloves": [("poly", [(0.3, 0.45), (0.7, 0.45), (0.68, 0.9), (0.32, 0.9)]),
               *[("poly", [(x, 0.18), (x + 0.08, 0.18), (x + 0.08, 0.46), (x, 0.46)])
                 for x in (0.31, 0.41, 0.51, 0.61)],
               ("poly", [(0.7, 0.55), (0.82, 0.45), (0.86, 0.5), (0.7, 0.68)])],
    "belt": [("band", (0.05, 0.44, 0.95, 0.56)), ("ring", (0.4, 0.38, 0.56, 0.62), 0.03)],
    "sunglasses": [("ellipse", (0.14, 0.38, 0.46, 0.64)), ("ellipse", (0.54, 0.38, 0.86, 0.64)),
                   ("line", [(0.46, 0.46), (0.54, 0.46)], 0.03)],
    "hairclip": [("poly", [(0.2, 0.45), (0.8, 0.4), (0.82, 0.52), (0.2, 0.58)])],
    "hairband": [("ring", (0.15, 0.2, 0.85, 0.95), 0.06)],
    "umbrella": [("chord", (0.1, 0.15, 0.9, 0.75)), ("line", [(0.5, 0.45), (0.5, 0.88)], 0.03)],
    "bag": [("poly", [(0.2, 0.4), (0.8, 0.4), (0.84, 0.88), (0.16, 0.88)]), ("ring", (0.32, 0.14, 0.68, 0.58), 0.04)],
    "shoe": [("poly", [(0.1, 0.55), (0.45, 0.52), (0.6, 0.62), (0.9, 0.68), (0.9, 0.78), (0.1, 0.78)])],
    "sneaker": [("poly", [(0.1, 0.45), (0.4, 0.42), (0.62, 0.56), (0.9, 0.62), (0.9, 0.74), (0.1, 0.74)]),
                ("band", (0.1, 0.74, 0.9, 0.82))],
    "boot": [("poly", [(0.3, 0.1), (0.55, 0.1), (0.58, 0.6), (0.85, 0.7), (0.85, 0.88), (0.3, 0.88)])],
    "sandal": [("band", (0.1, 0.72, 0.9, 0.8)), ("line", [(0.3, 0.72), (0.45, 0.5)], 0.04),
               ("line", [(0.6, 0.72), (0.45, 0.5)], 0.04)],
    "wallet": [("poly", [(0.2, 0.3), (0.8, 0.3), (0.8, 0.7), (0.2, 0.7)]), ("band", (0.2, 0.42, 0.8, 0.46))],
    "bottle": [("poly", [(0.42, 0.1), (0.58, 0.1), (0.58, 0.3), (0.68, 0.38), (0.68, 0.9), (0.32, 0.9),
                         (0.32, 0.38), (0.42, 0.3)])],
    "cushion": [("poly", [(0.15, 0.2), (0.85, 0.15), (0.85, 0.85), (0.15, 0.8)])],
    "item": [("ellipse", (0.2, 0.2, 0.8, 0.8))],
}


@lru_cache(maxsize=None)
def silhouette(shape: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(fill mask, outline mask) of a silhouette at ``size`` pixels."""
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    s = size - 1
    for part in SHAPES[shape]:
        kind = part[0]
        if kind == "poly":
            draw.polygon([(x * s, y * s) for x, y in part[1]], fill=255)
        elif kind == "cut":
            draw.polygon([(x * s, y * s) for x, y in part[1]], fill=0)
        elif kind == "ellipse":
            draw.ellipse([v * s for v in part[1]], fill=255)
        elif kind == "chord":
            draw.chord([v * s for v in part[1]], 180, 360, fill=255)
        elif kind == "band":
            draw.rectangle([v * s for v in part[1]], fill=255)
        elif kind == "line":
            draw.line([(x * s, y * s) for x, y in part[1]], fill=255, width=max(1, round(part[2] * size)))
        elif kind == "ring":
            draw.ellipse([v * s for v in part[1]], outline=255, width=max(1, round(part[2] * size)))
    mask = np.asarray(img) > 127
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask, mask & ~inner


class Renderer:
    """Renders article images at one size; the noise field is seeded so bytes are reproducible."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size = size
        self.noise = rng.random((2 * size, 2 * size)).astype(np.float32)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.yy, self.xx = yy, xx
        self.shade = (1.0 - 0.12 * yy / size)[..., None]

    def render(self, shape: str, pattern: str, rgb: np.ndarray, key: int) -> np.ndarray:
        """(size, size, 3) uint8 image; ``key`` picks the window of the noise field (per article)."""
        n = self.size
        ox, oy = (key * 7919) % n, (key * 104729) % n
        noise = self.noise[oy:oy + n, ox:ox + n]
        base = rgb.astype(np.float32)
        lum = 0.299 * base[0] + 0.587 * base[1] + 0.114 * base[2]
        contrast = np.full(3, 30.0 if lum > 140 else 245.0, dtype=np.float32)
        inverse = 255.0 - base
        p = max(4, n // 10)
        xx, yy = self.xx, self.yy
        second = None
        if pattern == "stripe":
            second, sel = contrast, (yy // (p // 2 + 1)) % 2 == 1
        elif pattern == "dot":
            second, sel = contrast, ((xx % p - p / 2) ** 2 + (yy % p - p / 2) ** 2) < (p / 4) ** 2
        elif pattern == "allover":
            second, sel = inverse, noise > 0.82
        elif pattern == "print":
            second, sel = inverse, (np.abs(xx - n / 2) < n * 0.12) & (np.abs(yy - n * 0.45) < n * 0.1)
        elif pattern == "application":
            second = np.minimum(base + 70, 255)
            sel = ((xx % (2 * p) - p) ** 2 + (yy % (2 * p) - p) ** 2) < (p / 2.5) ** 2
        elif pattern == "check":
            second, sel = contrast, ((xx % p) < 2) | ((yy % p) < 2)
        elif pattern == "blocking":
            second, sel = inverse, yy > n * 0.55
        elif pattern == "embroidery":
            second = contrast
            sel = (((xx % p) == p // 2) & ((yy % p) > p // 3) & ((yy % p) < 2 * p // 3)) | \
                  (((yy % p) == p // 2) & ((xx % p) > p // 3) & ((xx % p) < 2 * p // 3))
        elif pattern == "glitter":
            second, sel = np.full(3, 255.0, dtype=np.float32), noise > 0.93
        elif pattern == "lace":
            second, sel = np.full(3, BACKGROUND, dtype=np.float32), ((xx % 4) == 0) | ((yy % 4) == 0)
        elif pattern == "diamond":
            second, sel = contrast, (np.abs(xx % p - p / 2) + np.abs(yy % p - p / 2)) < p / 3
        tex = np.broadcast_to(base, (n, n, 3)).copy()
        if second is not None:
            tex[sel] = second
        if pattern == "melange":
            tex += (noise[..., None] - 0.5) * 60.0
        elif pattern == "denim":
            tex *= np.where(((xx + yy) % 4) < 1, 0.8, 1.0)[..., None]
            tex += (noise[..., None] - 0.5) * 30.0
        tex *= self.shade
        fill, edge = silhouette(shape, n)
        img = np.full((n, n, 3), BACKGROUND, dtype=np.float32)
        img[fill] = tex[fill]
        img[edge] = img[edge] * 0.6
        return np.clip(img, 0, 255).astype(np.uint8)


def image_path(images_dir: Path, article_id: str) -> Path:
    """``images/{first 3 digits}/{article_id}.jpg`` like the competition folder."""
    return images_dir / article_id[:3] / f"{article_id}.jpg"


def write_images(images_dir: Path, article_ids: list[str], shapes, patterns, rgbs: np.ndarray,
                 present: np.ndarray, size: int, rng: np.random.Generator) -> int:
    """Write one JPEG per article with ``present``; returns how many were written."""
    if any(len(a) != schema.ARTICLE_ID_DIGITS for a in article_ids):
        raise ValueError("article ids must be 10-digit strings")
    renderer = Renderer(size, rng)
    made_dirs: set[str] = set()
    written = 0
    for i, aid in enumerate(article_ids):
        if not present[i]:
            continue
        if aid[:3] not in made_dirs:
            (images_dir / aid[:3]).mkdir(parents=True, exist_ok=True)
            made_dirs.add(aid[:3])
        arr = renderer.render(shapes[i], patterns[i], rgbs[i], int(aid))
        Image.fromarray(arr, "RGB").save(image_path(images_dir, aid), format="JPEG", quality=JPEG_QUALITY)
        written += 1
    return written
