"""The dispatcher: help lists every command, unknown commands fail, no Paddle at start-up."""
import subprocess
import sys

from distill.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as stop:
        assert stop.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_an_error(capsys):
    try:
        code = main(["frobnicate"])
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_importing_distill_does_not_import_paddle():
    code = "import sys, distill, distill.cli, distill.text.encoders; print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_zlib_survives_paddle_import():
    code = ("import distill, paddle, gzip, sklearn.metrics; "
            "print(gzip.decompress(gzip.compress(b'ok')).decode())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("ok")


def test_paddle_commands_start_without_paddles_thread_notice():
    """distill sets OMP_NUM_THREADS on purpose; Paddle's notice about it is held back, while
    Paddle still runs on those threads."""
    import os

    code = ("import os, sys\nfrom distill.cli import main\ntry: main(['train', '--help'])\n"
            "except SystemExit: pass\n"
            "import paddle\nprint('threads', os.environ['OMP_NUM_THREADS'], file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(env, OMP_NUM_THREADS="2"), check=True)
    assert "usage: distill train" in out.stdout
    assert "WISELY" not in out.stderr and "OMP_NUM_THREADS set to" not in out.stderr
    assert "threads 2" in out.stderr
    plain = subprocess.run([sys.executable, "-c", "import paddle"], capture_output=True,
                           text=True, env=dict(env, OMP_NUM_THREADS="2"), check=True)
    assert "OMP_NUM_THREADS set to 2" in plain.stderr  # what is held back


def test_a_paddle_command_without_paddle_says_how_to_install_it():
    code = ("import sys; sys.modules['paddle'] = None\n"  # as in the runtime-only install
            "from distill.cli import main; sys.exit(main(['train', '--help']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert 'pip install "ernie-distill[train]"' in out.stderr
