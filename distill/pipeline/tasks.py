"""``run`` for every task type: sentence recipes on ``RunPlan``, ``task: token`` on ``TokenRunPlan``.

    from distill.pipeline.tasks import run
    report = run("recipes/smoke_token.yaml", out="runs/smoke_token")

(The one entry that knows both plans, so neither runner module imports the other.)
"""
from distill.pipeline import runner
from distill.pipeline.token_runner import TokenRunPlan

PLANS = {"sentence": runner.RunPlan, "token": TokenRunPlan}


def run(recipe, out=None, **options) -> dict:
    """``distill.pipeline.runner.run`` with the plan of the recipe's ``task``."""
    return runner.run(recipe, out=out, plans=PLANS, **options)
