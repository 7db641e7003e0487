"""Procedural Sewer-ML look-alike: pipe interiors with the 17 defect codes, in Sewer-ML's format
(:mod:`~hybrid.data.synthetic.spec`: what it is made of; :mod:`~hybrid.data.synthetic.painters`:
drawing an image; :mod:`~hybrid.data.synthetic.dataset_writer`: writing a dataset), and synthetic
inspection videos with their truth (:mod:`~hybrid.data.synthetic.pipe_videos`).

Every image is a perspective view down a pipe (receding joints, material tint, camera light
fall-off, water at the bottom, on-screen text) with defects drawn on the wall at random depth,
angle, size and contrast; water hides the parts of a defect below its surface. Labels follow
Sewer-ML's shape: about 47% defective, a long tail of rare codes, about 1.5 codes per defective
image, and codes that co-occur in real pipes (roots at displaced joints, ...).

Each image depends only on (seed, image index), so a dataset is reproducible and an interrupted
generation resumes where it stopped. ``hybrid synthetic root=DIR [num_train=5000 ...]`` writes one
by hand (``--help``: every key); the data module calls :func:`ensure_synthetic_dataset` on first use.
"""

from hybrid.data.synthetic.dataset_writer import ensure_synthetic_dataset, generate
from hybrid.data.synthetic.painters import render_image
from hybrid.data.synthetic.spec import META_FILE, SPLIT_FILES, SyntheticSpec, sample_labels

__all__ = [
    "META_FILE", "SPLIT_FILES", "SyntheticSpec", "ensure_synthetic_dataset", "generate", "render_image", "sample_labels",
]  # fmt: skip
