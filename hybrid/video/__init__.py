"""Inspection videos, torch-free except :mod:`~hybrid.video.frames_dataset`: frames sampled by
timestamp from files (:mod:`~hybrid.video.sampling`) and live sources
(:mod:`~hybrid.video.live_source`), score curves made into timed events
(:mod:`~hybrid.video.events`), the events' files and the CCTV-Pipe temporal metric. The training
stack (``hybrid infer input=VIDEO``) and serving (``hybrid serve``) share all of it."""
