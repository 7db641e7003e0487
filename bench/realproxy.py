"""A real-image multi-label proxy for Sewer-ML's 17-code task, made only of images that installed
packages ship (scikit-image's ``skimage.data`` and scikit-learn's sample images; nothing is
downloaded).

    python bench/realproxy.py --out outputs/realproxy [--seed 0] [--train 2400] [--val 600] [--test 600]

then ``hybrid train experiment=sewerml_multilabel data=csv data.root=outputs/realproxy
data.train_csv=SewerML_Train.csv data.valid_csv=SewerML_Val.csv data.test_csv=SewerML_Test.csv``.

**What it is.** Each image is a crop of a real texture photograph (brick, gravel, grass, the moon)
on which 0 to 4 patches are pasted, each cut from one of 17 real photographs (an astronaut, a
camera man, a cat, cells, a clock, coffee, coins, the Hubble deep field, stained tissue, a printed
page, a retina, a rocket, text, a Chinese temple, a flower, a logo, a colour wheel), one photograph
per Sewer-ML code. An image's labels are the codes whose photographs it shows. The codes are drawn
as the synthetic set draws them (:func:`hybrid.data.synthetic.sample_labels`: Sewer-ML's code
frequencies and co-occurrences, 47% of images with at least one code), so it keeps the benchmark's
imbalance; every patch is a different crop, at a different scale, of its photograph, so a code is
recognized from photographic content, not from one memorized pattern. The splits are fixed
``SewerML_{Train,Val,Test}.csv`` files with the official header, and the same ``--seed`` writes the
same bytes.

**What it is not.** Sewer footage: the content, the look and the label semantics are not Sewer-ML's,
and a score here is no estimate of one there. It is a place where a model's capacity to tell many
small, real-looking things apart in one image shows, which the procedural synthetic set (flat
shapes on a rendered pipe) cannot tell apart.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybrid.data.sewerml import CSV_HEADER, DEFECT_CODES  # noqa: E402  (after the path insert)
from hybrid.data.synthetic import sample_labels  # noqa: E402

# One photograph per code, in the benchmark's code order: (package, name).
CODE_PHOTOS: tuple[tuple[str, str], ...] = (
    ("skimage", "astronaut"), ("skimage", "camera"), ("skimage", "chelsea"), ("skimage", "cell"),
    ("skimage", "clock"), ("skimage", "coffee"), ("skimage", "coins"), ("skimage", "hubble_deep_field"),
    ("skimage", "immunohistochemistry"), ("skimage", "page"), ("skimage", "retina"), ("skimage", "rocket"),
    ("skimage", "text"), ("sklearn", "china.jpg"), ("sklearn", "flower.jpg"), ("skimage", "logo"),
    ("skimage", "colorwheel"),
)  # fmt: skip
BACKGROUNDS = ("brick", "gravel", "grass", "moon")
SPLITS = (("train", "SewerML_Train.csv"), ("val", "SewerML_Val.csv"), ("test", "SewerML_Test.csv"))
DEFECT_RATE = 0.47  # the synthetic set's default, near Sewer-ML's share of defective frames
GRID = 3  # patches go to distinct cells of a GRID x GRID layout, so none hides another


def load_photo(package: str, name: str) -> np.ndarray:
    """A bundled photograph as uint8 RGB ``[H, W, 3]``."""
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        pixels = load_sample_image(name)
    else:
        import skimage.data

        pixels = getattr(skimage.data, name)()
    pixels = np.asarray(pixels)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3].astype(np.uint8))


def random_crop(rng: np.random.Generator, photo: np.ndarray, fraction: tuple[float, float], side: int) -> Image.Image:
    """A square crop of ``fraction`` of the photo's shorter side, at a random place, resized to ``side``."""
    height, width = photo.shape[:2]
    crop = int(min(height, width) * rng.uniform(*fraction))
    top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
    image = Image.fromarray(photo[top : top + crop, left : left + crop]).resize((side, side), Image.BILINEAR)
    return image.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def render(rng: np.random.Generator, codes: list[str], photos: dict, backgrounds: list, size: int) -> Image.Image:
    """One image: a background crop with a patch of each code's photograph in its own cell."""
    image = random_crop(rng, backgrounds[int(rng.integers(len(backgrounds)))], (0.3, 0.8), size)
    cell = size // GRID
    for code, slot in zip(codes, rng.choice(GRID * GRID, size=len(codes), replace=False), strict=True):
        side = int(rng.integers(int(cell * 0.7), cell + 1))
        patch = random_crop(rng, photos[code], (0.2, 0.6), side)
        row, column = divmod(int(slot), GRID)
        top = row * cell + int(rng.integers(0, cell - side + 1))
        left = column * cell + int(rng.integers(0, cell - side + 1))
        image.paste(patch, (left, top))
    return image


def generate(out: Path, counts: dict[str, int], seed: int, size: int) -> dict[str, int]:
    """Write the images and the three CSVs under ``out``; returns the images per split."""
    photos = {code: load_photo(*source) for code, source in zip(DEFECT_CODES, CODE_PHOTOS, strict=True)}
    backgrounds = [load_photo("skimage", name) for name in BACKGROUNDS]
    (out / "images").mkdir(parents=True, exist_ok=True)
    for split_number, (split, csv_name) in enumerate(SPLITS):
        rows = []
        for index in range(counts[split]):
            rng = np.random.default_rng([seed, split_number, index])  # an image depends on these only
            codes, _ = sample_labels(rng, DEFECT_RATE)
            name = f"{split}_{index:05d}.png"
            render(rng, codes, photos, backgrounds, size).save(out / "images" / name, optimize=False)
            row = dict.fromkeys(CSV_HEADER, 0)
            row.update({code: 1 for code in codes}, Filename=name, Defect=int(bool(codes)), ND=int(not codes))
            rows.append(row)
        with open(out / csv_name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(CSV_HEADER), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return dict(counts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for images/ and the three CSVs")
    parser.add_argument("--seed", type=int, default=0, help="the dataset depends only on this and the sizes")
    parser.add_argument("--train", type=int, default=2400, help="training images")
    parser.add_argument("--val", type=int, default=600, help="validation images")
    parser.add_argument("--test", type=int, default=600, help="test images")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    written = generate(Path(args.out), counts, args.seed, args.size)
    print(f"{sum(written.values())} images ({written}) and SewerML_{{Train,Val,Test}}.csv in {args.out}")


if __name__ == "__main__":
    main()
