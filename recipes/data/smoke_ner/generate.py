"""Generate the tiny synthetic Chinese NER task used by recipes/smoke_token.yaml and tests (seeded).

Char per line, BMES tags over PER/LOC/ORG; entities come from small fixed lists and sit in
filler text, with a few ambiguous characters so the task is not trivial.
    python recipes/data/smoke_ner/generate.py
"""
import random
from pathlib import Path

HERE = Path(__file__).parent
ENTITIES = {
    "PER": ["张三", "李四", "王小明", "赵六", "陈", "刘德华", "周杰"],
    "LOC": ["北京", "上海", "广州", "长江", "西湖", "天津市", "京"],
    "ORG": ["新华社", "联合国", "北京大学", "中国银行", "人大"],
}
FILLER = list("今天的我们在了和是有到去说这那个人来时会上下中年月日也很就都而及与对")


def tag(text, kind):
    if len(text) == 1:
        return [f"S-{kind}"]
    return [f"B-{kind}"] + [f"M-{kind}"] * (len(text) - 2) + [f"E-{kind}"]


def sentence(rng):
    chars, tags = [], []
    for _ in range(rng.randint(1, 3)):
        for _ in range(rng.randint(1, 5)):
            chars.append(rng.choice(FILLER))
            tags.append("O")
        kind = rng.choice(sorted(ENTITIES))
        name = rng.choice(ENTITIES[kind])
        chars += list(name)
        tags += tag(name, kind)
    for _ in range(rng.randint(0, 4)):
        chars.append(rng.choice(FILLER))
        tags.append("O")
    return chars, tags


def main():
    rng = random.Random(11)
    for name, n in (("train", 200), ("dev", 50), ("test", 50)):
        with open(HERE / f"{name}.txt", "w", encoding="utf-8") as f:
            for _ in range(n):
                chars, tags = sentence(rng)
                f.write("".join(f"{c} {t}\n" for c, t in zip(chars, tags)) + "\n")


if __name__ == "__main__":
    main()
