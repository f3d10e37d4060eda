"""Export: Paddle/ONNX artifacts, FP32 and INT8, each measured and accuracy-guarded; packaging.

    from distill.export import ExportConfig, export_model

``exporter`` runs the formats, ``measure`` times and judges each artifact, ``package`` builds
the edge package. The names below load on first use, so ``distill.export.package`` stays light.
"""


def __getattr__(name):  # PEP 562
    if name in ("ExportConfig", "export_model", "load_model_dir", "FORMATS"):
        from distill.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'distill.export' has no attribute {name!r}")
