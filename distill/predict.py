"""Alias kept for the public API: ``distill.predict.load_package`` is ``distill.serve.load_package``."""
from distill.serve.predict import Predictor, load_package

__all__ = ["Predictor", "load_package"]
