"""ernie-distill: distil fine-tuned ERNIE-family teachers into small, quantized, edge-ready students."""
from setuptools import find_packages, setup

CORE = [
    "paddlepaddle==2.6.2",
    "paddleslim==2.6.0",
    "six", "requests", "decorator",          # used by paddleslim, not declared by it
    "paddle2onnx==1.3.1",
    "onnx", "onnxruntime", "ml_dtypes", "sympy",  # ml_dtypes/sympy: onnxruntime's quantizer
    "numpy", "sentencepiece", "tokenizers", "safetensors", "jieba",
    "scikit-learn", "seqeval", "tqdm", "PyYAML", "matplotlib",
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
    install_requires=CORE,
    extras_require={
        # swap the CPU wheel for the CUDA 11.8 build of the same release
        "gpu": ["paddlepaddle-gpu==2.6.2"],
        "test": ["pytest"],
    },
    entry_points={"console_scripts": ["distill=distill.cli:main"]},
)
