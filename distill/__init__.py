"""ernie-distill: distil a fine-tuned ERNIE-family teacher into small, fast, quantized students.

Importing this package never imports Paddle (the edge predictor in ``distill.serve.predict`` must run
without it). It does three things that have to happen before Paddle is first imported anywhere:

* binds Python's ``zlib`` module to the system libz. ``libpaddle.so`` (2.6.2) exports its own
  zlib symbols; if Paddle is imported first, libz resolves its internal calls into Paddle's copy
  and every later ``zlib``/``gzip`` call (and scipy/scikit-learn imports) fails or segfaults;
* sets ``OMP_NUM_THREADS`` to the usable core count unless the user set it: Paddle's CPU math
  runs on one thread otherwise (docs/design.md: 37 vs 70 GFLOP/s on 2 cores);
* sets ``GLOG_minloglevel=1`` unless the user set it: Paddle's C++ info lines ("New Executor is
  Running.") stay out of the toolkit's output; ``GLOG_minloglevel=0`` shows them.
"""
import os
import zlib  # noqa: F401  (must be imported before paddle, see above)

from distill.core import __version__
from distill.core.runtime import usable_cores

os.environ.setdefault("OMP_NUM_THREADS", str(usable_cores()))
os.environ.setdefault("GLOG_minloglevel", "1")

__all__ = ["__version__", "run"]


def run(recipe, out=None, **options):
    """Run a recipe (a YAML path or a dict) end to end and return its report as a dict.

    Example::

        import distill
        report = distill.run("recipes/smoke.yaml", out="runs/smoke")
        print(report["students"][0]["distilled"]["test"]["accuracy"])
    """
    from distill.train.device import import_paddle

    import_paddle()  # without its notice about the OMP_NUM_THREADS set above
    from distill.pipeline.tasks import run as _run

    return _run(recipe, out=out, **options)
