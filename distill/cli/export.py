"""`distill export`: the command line of ``distill.export.exporter``."""
from pathlib import Path

from distill.core.io import owned_output, plain_name_problem
from distill.export import exporter as library
from distill.export.exporter import (ExportConfig, FORMATS, MeasureSettings, PTQ_ALGOS, UserError, export_model, load_model_dir)

DESCRIPTION = library.__doc__


def add_arguments(parser) -> None:
    parser.add_argument("model_dir", help="a saved student or teacher directory")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated subset of {','.join(FORMATS)}")
    parser.add_argument("--eval", help="labelled dev file (.tsv/.jsonl/.csv): the accuracy guard "
                                       "judges every artifact on it")
    parser.add_argument("--test", help="labelled test file: accuracy reported only, never used "
                                       "for a choice")
    parser.add_argument("--calib", help="calibration texts (default: the eval file)")
    parser.add_argument("--calib-size", type=int, default=200)
    parser.add_argument("--max-len", type=int, default=None)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.005,
                        help="fraction: 0.005 = 0.5 accuracy points")
    parser.add_argument("--algo", default="hist", choices=PTQ_ALGOS, help="Paddle PTQ algorithm")
    parser.add_argument("--threads", type=int, default=0, help="0 = every usable core")
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--package", metavar="NAME", help="also write OUT/NAME.tar.gz")
    parser.add_argument("--teacher", default="", help="teacher name for the package manifest")
    parser.add_argument("--trim-vocab", default="off", metavar="off|auto|N",
                        help="keep only the pieces of --trim-texts (+ N most probable ones); "
                             "measured and rejected like INT8 (distill.export.trim)")
    parser.add_argument("--trim-texts", metavar="FILE",
                        help="training (+ augmented) texts that decide the kept pieces")
    parser.add_argument("--qat-steps", type=int, default=0, metavar="N",
                        help="paddle-int8: also quantization-aware training for N steps on the "
                             "--calib rows; PTQ, QAT and weight-only are compared on --eval "
                             "(0 = off; distill.export.qat)")
    parser.add_argument("--qat-loss", default="logit_mse:1",
                        help="QAT loss against the FP32 model's logits (+ hard_ce on labels)")

def main(args) -> int:
    """Run with ``--out`` owned by the tool and locked (one process at a time)."""
    if args.package is not None and plain_name_problem(args.package):
        raise UserError(f"--package: {plain_name_problem(args.package)} (the package is written "
                        f"as OUT/NAME.tar.gz)")
    with owned_output(args.out, "--out folder"):
        return _main(args)


def _main(args) -> int:
    from distill.data.examples import read_examples
    from distill.export.package import describe

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    config = ExportConfig(formats=formats, max_len=args.max_len, calib_size=args.calib_size,
                          algo=args.algo, max_accuracy_drop=args.max_accuracy_drop,
                          threads=args.threads, trim_vocab=args.trim_vocab,
                          measure=MeasureSettings(latency_runs=args.latency_runs),
                          qat={"steps": args.qat_steps, "loss": args.qat_loss}
                          if args.qat_steps else None)
    config.validate()
    loaded = load_model_dir(args.model_dir)
    eval_examples = read_examples(args.eval, labels=loaded.labels) if args.eval else None
    test_examples = read_examples(args.test, labels=loaded.labels) if args.test else None
    calib = read_examples(args.calib, require_label=False) if args.calib else None
    if not eval_examples and not calib:
        raise UserError("give --eval FILE (labelled, for accuracy) and/or --calib FILE")
    if calib is None:
        print(f"distill export: calibrating on {args.eval}; pass --calib TRAIN_FILE to keep "
              f"calibration and evaluation apart")
    meta = {"teacher": args.teacher} if args.teacher else None
    trim_texts = (read_examples(args.trim_texts, require_label=False) if args.trim_texts
                  else None)
    result = export_model(loaded, out_dir=args.out, calib_examples=calib,
                          eval_examples=eval_examples, test_examples=test_examples,
                          config=config, package=args.package, meta=meta, trim_texts=trim_texts)
    trim = result.reference.get("trim")
    if trim and trim["setting"] != "off":
        state = "accepted" if trim["accepted"] else f"REJECTED: {trim['reason']}"
        print(f"trim_vocab {trim['setting']}: {trim['vocab_before']} -> {trim['vocab_after']} "
              f"pieces, {trim['parameters_before']:,} -> {trim['parameters_after']:,} "
              f"parameters; {state}")
    print(describe(result.reports))
    if result.package:
        print(f"package: {result.package}")
    print(f"report: {Path(args.out) / 'export_report.json'}")
    return 0
