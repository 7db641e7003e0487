"""Model files for serving on a device: the ONNX model card (:mod:`~hybrid.deploy.card`), the
export steps per precision (:mod:`~hybrid.deploy.onnx_export`), the runtimes that serve an
``.onnx`` (:mod:`~hybrid.deploy.onnx_module`) and the one loader for either format
(:mod:`~hybrid.deploy.serving`)."""
