"""The edge runtime: load a package and predict with ONNX Runtime and the tokenizers only.

Imports neither Paddle nor anything above ``distill.core``/``distill.text`` (checked by
import-linter)::

    from distill.serve import load_package
    load_package("movies-bow.tar.gz").predict(["a gripping, funny film"])
"""
from distill.serve.predict import load_package

__all__ = ["load_package"]
