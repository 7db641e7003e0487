"""Serving an exported model without the training stack: numpy, Pillow and onnxruntime (OpenVINO
optional), nothing else; no torch, torchvision, Hydra, OmegaConf, pandas, scikit-learn,
matplotlib or wandb is imported here (``tests/test_serve.py`` proves it).

:mod:`~hybrid.serve.card` reads the model card an ``.onnx`` carries, :mod:`~hybrid.serve.runtimes`
runs it, :mod:`~hybrid.serve.images` turns image files into its input as the training stack's
evaluation path does, and :class:`~hybrid.serve.model.Model` puts them together::

    from hybrid.serve import Model

    model = Model("model.onnx")
    probs = model.predict(["frame_0001.jpg", "frame_0002.jpg"])  # [2, classes]
    model.decisions(probs)  # class names (single-label) or the codes at or above the threshold
"""

from hybrid.serve.model import Model

__all__ = ["Model"]
