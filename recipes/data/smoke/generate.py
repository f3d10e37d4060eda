"""Generate the tiny synthetic sentiment task used by recipes/smoke.yaml and tests (seeded)."""
import random
from pathlib import Path

HERE = Path(__file__).parent
rng = random.Random(7)
pos = "good great lovely superb charming moving brilliant fun delightful warm".split()
neg = "bad awful dull boring clumsy tedious weak messy bland sour".split()
neu = "the film movie story plot acting cast script ending music scenes director was is really quite very a an this that".split()
def sent(label):
    words = rng.choices(neu, k=rng.randint(3, 9))
    pool = pos if label == "positive" else neg
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
    if rng.random() < 0.15:  # a little label noise so the task is not trivial
        words.insert(rng.randrange(len(words) + 1), rng.choice(neg if label == "positive" else pos))
    return " ".join(words).capitalize() + rng.choice([".", "!", "..."])
for name, n in [("train", 240), ("dev", 60), ("test", 60)]:
    with open(f"{HERE}/{name}.tsv", "w") as f:
        f.write("text_a\tlabel\n")
        for _ in range(n):
            label = rng.choice(["positive", "negative"])
            f.write(f"{sent(label)}\t{label}\n")
