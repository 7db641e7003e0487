"""Serving an exported model without the training stack: numpy, Pillow, onnxruntime and PyAV
(OpenVINO optional), nothing else; no torch, torchvision, Hydra, OmegaConf, pandas, scikit-learn,
matplotlib or wandb is imported here (``tests/test_serve.py`` proves it).

:mod:`~hybrid.serve.model_card` reads the model card an ``.onnx`` carries, :mod:`~hybrid.serve.runtimes`
runs it, :mod:`~hybrid.serve.model_input` turns image files and video frames into its input as the
training stack's evaluation path does, :class:`~hybrid.serve.model.Model` puts them together;
:mod:`~hybrid.serve.video_files` makes videos into timed events, :mod:`~hybrid.serve.live` does it for a
stream as it plays, and :mod:`~hybrid.jobs.serve` is ``hybrid serve``::

    from hybrid.serve import Model, VideoOptions, find_events

    model = Model("model.onnx")
    probs = model.predict(["frame_0001.jpg", "frame_0002.jpg"])  # [2, classes]
    events, scores = find_events(model, "pipe.mp4", VideoOptions(fps=2))
    for event in events:  # label, start_s, end_s, peak_s, peak_score, mean_score
        print(event.label, event.start_s, event.end_s)
"""

from hybrid.serve.model import Model
from hybrid.serve.schema import VideoOptions
from hybrid.serve.video_files import find_events

__all__ = ["Model", "VideoOptions", "find_events"]
