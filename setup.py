"""ernie-distill: distil fine-tuned ERNIE-family teachers into small, quantized, edge-ready students."""
from setuptools import find_packages, setup

# What runs a package (distill predict / distill serve, distill.serve): no Paddle. Every
# package kind loads with these alone (tests/serve/test_runtime_env.py checks it in an
# environment that has nothing else).
RUNTIME = [
    "numpy", "onnxruntime",
    "tokenizers", "sentencepiece",           # WordPiece / SentencePiece encoders
    "jieba", "regex",                        # word students (Chinese / English words)
    "starlette", "uvicorn",                  # distill serve
    "httptools",                             # uvicorn's C HTTP parser (h11 is pure Python)
    "uvloop; sys_platform != 'win32'",       # uvicorn's libuv event loop (not on Windows)
    "orjson",                                # distill serve's JSON answers
]
# Training, labelling and export: pip install "ernie-distill[train]" (make install uses the
# complete lock in requirements.txt instead).
TRAIN = [
    "paddlepaddle==2.6.2",
    "paddleslim==2.6.0",
    "six", "requests", "decorator",          # used by paddleslim, not declared by it
    "paddle2onnx==1.3.1",
    "onnx", "ml_dtypes", "sympy",            # ml_dtypes/sympy: onnxruntime's quantizer
    "safetensors", "scikit-learn", "seqeval", "tqdm", "PyYAML", "matplotlib",
]

setup(
    name="ernie-distill",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["distill", "distill.*", "teachers", "teachers.*",
                                    "students", "students.*"]),
    include_package_data=True,
    # python_requires: package extraction (distill.serve.loader) checks and writes each entry
    # itself instead of relying on tarfile's filter="data" (3.11.4 / 3.10.12 / 3.9.17).
    install_requires=RUNTIME,
    extras_require={
        "runtime": [],                       # the default install: ernie-distill[runtime]
        "train": TRAIN,
        # swap the CPU wheel for the CUDA 11.8 build of the same release
        "gpu": ["paddlepaddle-gpu==2.6.2"] + [r for r in TRAIN if not r.startswith("paddlepaddle")],
        "test": ["pytest", "hypothesis", "httpx", "import-linter"],
    },
    entry_points={"console_scripts": ["distill=distill.cli:main"]},
)
