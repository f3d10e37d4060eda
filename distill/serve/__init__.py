"""The edge runtime: load a package and predict with ONNX Runtime and the tokenizers only.

Imports neither Paddle nor anything above ``distill.core``/``distill.text`` (checked by
import-linter)::

    from distill.serve import load_package
    load_package("movies-bow.tar.gz").predict(["a gripping, funny film"])

``predict`` (the Predictor), ``loader`` (safe, bounded package extraction and schema checks),
``server`` (``distill serve``: Starlette on uvicorn with micro-batching). docs/edge.md has the
package files, a Python client and the ten lines to run a package with ONNX Runtime directly.
"""
from distill.serve.predict import load_package

__all__ = ["load_package"]
