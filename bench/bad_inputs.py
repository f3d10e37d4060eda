"""Throw bad inputs at the CLI and count: clean errors (exit 2, one message), tracebacks, data lost.

    python -m bench.bad_inputs [--out bench/results/bad_inputs.json]

Each case builds its inputs in a fresh temporary folder, runs ``distill ...`` in a subprocess and
records the exit code, whether stderr holds a Python traceback, the last stderr line, and whether
any file or folder that existed before the command (the "user's data") is gone or changed.
Needs no network, no weights: the teacher is a tiny random one made by the smoke recipe's stage.
"""
import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE_DATA = ROOT / "recipes" / "data" / "smoke"


def snapshot(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class MakeDir:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def run(args, cwd, env=None, timeout=300):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "distill", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc, time.perf_counter() - start


def tiny_recipe(d: Path, **extra) -> Path:
    text = f"""name: {extra.get('name', 'probe')}
seeds: [0]
device: cpu
data: {{train: {SMOKE_DATA}/train.tsv, dev: {SMOKE_DATA}/dev.tsv, test: {SMOKE_DATA}/test.tsv}}
teacher:
  source: random
  random: {{hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}
  max_len: {extra.get('max_len', 32)}
  finetune: {{epochs: 1, batch_size: 32}}
students:
  - name: {extra.get('student', 'bow')}
    kind: bow
    config: {{emb_dim: 16, hidden_sizes: [16]}}
    train: {{epochs: 1, batch_size: 32}}
export: {{formats: [onnx]}}
"""
    path = d / "r.yaml"
    path.write_text(text)
    return path


MOUNTS = []  # tmpfs mounted by a case (disk full / read-only), unmounted after it


def tiny_fs(where: Path, options: str) -> Path:
    """A tmpfs at ``where`` (root only): ``size=64k`` for a full disk, ``ro`` for read-only."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    MOUNTS.append(where)
    return where


def saved_student(folder: Path) -> Path:
    """A real saved BOW student (its weights file is then spoiled by the case)."""
    import paddle

    from distill.text.vocab import WordVocab
    from students.io import save_student
    from students.registry import build_student

    vocab = WordVocab.build(["a good film", "a bad film"], language="en")
    paddle.seed(0)
    model = build_student("bow", {"emb_dim": 8, "hidden_sizes": [8]}, vocab_size=vocab.vocab_size,
                          num_labels=2)
    save_student(folder, model, "bow", vocab, labels=["negative", "positive"], max_len=8)
    return folder


def cases():
    """(name, setup(d) -> argv) pairs; setup may create files in d (all of d is 'user data')."""
    c = []

    def add(name):
        def deco(fn):
            c.append((name, fn))
            return fn
        return deco

    @add("augment output is an existing folder")
    def _(d):
        (d / "victim.jsonl").mkdir(); (d / "victim.jsonl" / "keep.txt").write_text("mine")
        return ["augment", SMOKE_DATA / "train.tsv", d / "victim.jsonl"]

    @add("run --out is the recipe's own project folder")
    def _(d):
        proj = d / "proj"; (proj / "teacher" / "ckpt").mkdir(parents=True)
        (proj / "teacher" / "ckpt" / "weights.bin").write_bytes(b"precious")
        recipe = tiny_recipe(proj)
        return ["run", recipe, "--out", proj]

    @add("recipe name ../../x")
    def _(d):
        return ["run", tiny_recipe(d, name="../../x")]

    @add("recipe name absolute")
    def _(d):
        return ["run", tiny_recipe(d, name=str(d / "abs"))]

    @add("student name ..")
    def _(d):
        return ["run", tiny_recipe(d, student="'..'"), "--out", d / "o"]

    @add("alias bomb recipe")
    def _(d):
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for i, k in enumerate("bcdefghi"):
            prev = "abcdefghi"[i]
            lines.append(f"{k}: &{k} [" + ",".join([f"*{prev}"] * 9) + "]")
        (d / "bomb.yaml").write_text("\n".join(lines) + "\n")
        return ["run", d / "bomb.yaml", "--out", d / "o"]

    @add("recipe is invalid UTF-8")
    def _(d):
        (d / "bad.yaml").write_bytes(b"name: caf\xe9\n")
        return ["run", d / "bad.yaml", "--out", d / "o"]

    @add("recipe is a folder")
    def _(d):
        (d / "dir.yaml").mkdir()
        return ["run", d / "dir.yaml", "--out", d / "o"]

    @add("recipe unreadable [needs non-root]")
    def _(d):
        p = tiny_recipe(d); p.chmod(0)
        return ["run", p, "--out", d / "o"]

    @add("train data is a folder")
    def _(d):
        (d / "train.tsv").mkdir()
        return ["train", "--kind", "bow", "--train", d / "train.tsv", "--out", d / "o"]

    @add("train data unreadable [needs non-root]")
    def _(d):
        p = d / "train.tsv"; p.write_text((SMOKE_DATA / "train.tsv").read_text()); p.chmod(0)
        return ["train", "--kind", "bow", "--train", p, "--out", d / "o"]

    @add("train data invalid UTF-8")
    def _(d):
        p = d / "train.tsv"; p.write_bytes(b"text_a\tlabel\ncaf\xe9 ok\tpositive\n")
        return ["train", "--kind", "bow", "--train", p, "--out", d / "o"]

    @add("train --out is an existing file")
    def _(d):
        (d / "o").write_text("mine")
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--out", d / "o",
                "--epochs", "1", "--no-progress"]

    @add("train --out is a foreign non-empty folder")
    def _(d):
        (d / "o").mkdir(); (d / "o" / "notes.txt").write_text("mine")
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--out", d / "o",
                "--epochs", "1", "--no-progress"]

    @add("train --out read-only parent [needs non-root]")
    def _(d):
        ro = d / "ro"; ro.mkdir(); ro.chmod(0o555)
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--out", ro / "o",
                "--epochs", "1", "--no-progress"]

    @add("soft labels with NaN")
    def _(d):
        import numpy as np
        rows = sum(1 for _ in open(SMOKE_DATA / "train.tsv")) - 1
        logits = np.zeros((rows, 2), np.float32); logits[3, 0] = np.nan
        np.save(d / "sl.npy", logits)
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--soft-labels",
                d / "sl.npy", "--out", d / "o", "--no-progress"]

    @add("pickled payload as a student checkpoint (export)")
    def _(d):
        s = saved_student(d / "student")
        (s / "model_state.pdparams").write_bytes(pickle.dumps({"evil": MakeDir(d / "PWNED")}))
        return ["export", s, "--out", d / "o", "--eval", SMOKE_DATA / "dev.tsv"]

    @add("random bytes as a student checkpoint (export)")
    def _(d):
        s = saved_student(d / "student")
        (s / "model_state.pdparams").write_bytes(os.urandom(3000))
        return ["export", s, "--out", d / "o", "--eval", SMOKE_DATA / "dev.tsv"]

    @add("truncated student checkpoint (export)")
    def _(d):
        s = saved_student(d / "student")
        data = (s / "model_state.pdparams").read_bytes()
        (s / "model_state.pdparams").write_bytes(data[: len(data) // 2])
        return ["export", s, "--out", d / "o", "--eval", SMOKE_DATA / "dev.tsv"]

    @add("export --package ../../x")
    def _(d):
        return ["export", d / "nothing", "--out", d / "o", "--package", "../../x",
                "--eval", SMOKE_DATA / "dev.tsv"]

    @add("--seeds=-1")
    def _(d):
        return ["run", tiny_recipe(d), "--out", d / "o", "--seeds=-1"]

    @add("teacher.max_len above positions")
    def _(d):
        return ["run", tiny_recipe(d, max_len=100000), "--out", d / "o"]

    @add("predict --input invalid UTF-8")
    def _(d):
        (d / "in.txt").write_bytes(b"caf\xe9\n")
        (d / "pkg.tar.gz").write_bytes(b"not a package")
        return ["predict", d / "pkg.tar.gz", "--input", d / "in.txt"]

    @add("predict on random bytes as a package")
    def _(d):
        (d / "pkg.tar.gz").write_bytes(os.urandom(2000))
        return ["predict", d / "pkg.tar.gz", "hello"]

    @add("label --teacher with a pickled payload")
    def _(d):
        t = d / "teacher"; t.mkdir()
        (t / "teacher.json").write_text(json.dumps({"name": "t", "labels": ["a", "b"], "max_len": 8}))
        (t / "ernie_config.json").write_text(json.dumps({"vocab_size": 8, "hidden_size": 8,
                                                          "num_layers": 1, "num_heads": 2,
                                                          "intermediate_size": 8, "max_position_embeddings": 16}))
        (t / "model_state.pdparams").write_bytes(pickle.dumps({"evil": MakeDir(d / "PWNED")}))
        (t / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\n")
        (d / "in.jsonl").write_text('{"text_a": "a b"}\n')
        return ["label", "--teacher", t, "--input", d / "in.jsonl", "--out", d / "o"]

    @add("recipe with a !!python/object tag")
    def _(d):
        (d / "r.yaml").write_text("name: !!python/object/apply:os.mkdir ['PWNED']\n")
        return ["run", d / "r.yaml", "--out", d / "o"]

    @add("recipe is a YAML list")
    def _(d):
        (d / "r.yaml").write_text("- a\n- b\n")
        return ["run", d / "r.yaml", "--out", d / "o"]

    @add("recipe unknown key")
    def _(d):
        p = tiny_recipe(d)
        p.write_text(p.read_text() + "studnets: []\n")
        return ["run", p, "--out", d / "o"]

    @add("--set alias bomb")
    def _(d):
        flow = ("[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &e [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], "
                "[*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]")
        return ["run", tiny_recipe(d), "--out", d / "o", "--set", f"seeds={flow}"]

    @add("train data missing")
    def _(d):
        return ["train", "--kind", "bow", "--train", d / "missing.tsv", "--out", d / "o"]

    @add("train --config is a JSON list")
    def _(d):
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--out", d / "o",
                "--config", "[1]"]

    @add("soft labels: pickled object .npy")
    def _(d):
        import numpy as np
        np.save(d / "sl.npy", np.array([MakeDir(d / "PWNED")], dtype=object), allow_pickle=True)
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--soft-labels",
                d / "sl.npy", "--out", d / "o", "--no-progress"]

    @add("augment output under a file")
    def _(d):
        (d / "file").write_text("mine")
        return ["augment", SMOKE_DATA / "train.tsv", d / "file" / "out.jsonl"]

    @add("augment input missing")
    def _(d):
        return ["augment", d / "missing.tsv", d / "out.jsonl"]

    @add("label --teacher missing folder")
    def _(d):
        (d / "in.jsonl").write_text('{"text_a": "a b"}\n')
        return ["label", "--teacher", d / "nope", "--input", d / "in.jsonl", "--out", d / "o"]

    @add("predict: package is a folder")
    def _(d):
        (d / "pkg").mkdir()
        return ["predict", d / "pkg", "hello"]

    @add("predict: truncated package")
    def _(d):
        import io
        import tarfile
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("p/manifest.json")
            payload = b'{"name": "p"}' * 100
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        (d / "p.tar.gz").write_bytes(buf.getvalue()[:60])
        return ["predict", d / "p.tar.gz", "hello"]

    @add("export --threads -1")
    def _(d):
        s = saved_student(d / "student")
        return ["export", s, "--out", d / "o", "--eval", SMOKE_DATA / "dev.tsv", "--threads", "-1"]

    @add("disk full while augmenting [needs root mount]")
    def _(d):
        fs = tiny_fs(d.parent / "tiny", "size=64k")
        return ["augment", SMOKE_DATA / "train.tsv", fs / "aug.jsonl", "--n-iter", "20"]

    @add("disk full while training [needs root mount]")
    def _(d):
        fs = tiny_fs(d.parent / "tiny", "size=64k")
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--out", fs / "o",
                "--epochs", "1", "--no-progress"]

    @add("read-only --out file system [needs root mount]")
    def _(d):
        fs = tiny_fs(d.parent / "ro", "size=1m,ro")
        return ["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv", "--out", fs / "o",
                "--epochs", "1", "--no-progress"]

    return c


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    args = parser.parse_args(argv)
    results = []
    for name, setup in cases():
        if args.k and args.k not in name:
            continue
        if "[needs non-root]" in name and os.geteuid() == 0:
            print(f"--  {name}: skipped (root ignores file permissions)")
            continue
        if "[needs root mount]" in name and os.geteuid() != 0:
            print(f"--  {name}: skipped (mounting a tmpfs needs root)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "user"
            d.mkdir()
            try:
                argv_ = setup(d)
            except (subprocess.CalledProcessError, FileNotFoundError) as err:
                print(f"--  {name}: skipped ({err})")
                continue
            before = snapshot(d)
            proc, seconds = run(argv_, cwd=d)
            after = snapshot(d) if os.access(d, os.R_OK) else {}
            for p in d.rglob("*"):  # undo chmods so the folder can be removed
                try:
                    p.chmod(0o755 if p.is_dir() else 0o644)
                except OSError:
                    pass
            while MOUNTS:
                subprocess.run(["umount", str(MOUNTS.pop())], check=False)
            lost = [k for k, v in before.items() if after.get(k) != v]
            traceback = "Traceback (most recent call last)" in proc.stderr
            last = (proc.stderr.strip().splitlines() or [""])[-1].replace(tmp, "<tmp>")
            results.append({"case": name, "exit": proc.returncode, "traceback": traceback,
                            "lost": lost, "pwned": (d / "PWNED").exists(),
                            "seconds": round(seconds, 1), "message": last[:300]})
            flag = "OK " if proc.returncode == 2 and not traceback and not lost else "BAD"
            print(f"{flag} {name}: exit {proc.returncode} {'TRACEBACK ' if traceback else ''}"
                  f"{'LOST ' + str(lost) if lost else ''}\n    {last[:200]}", flush=True)
    clean = sum(r["exit"] == 2 and not r["traceback"] for r in results)
    summary = {"tried": len(results), "clean_errors": clean, "load": list(os.getloadavg()),
               "tracebacks": sum(r["traceback"] for r in results),
               "data_lost": sum(bool(r["lost"]) for r in results),
               "payloads_run": sum(r["pwned"] for r in results), "cases": results}
    print(json.dumps({k: v for k, v in summary.items() if k != "cases"}))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
