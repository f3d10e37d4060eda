"""Inference backends: Paddle Inference (save, PTQ INT8, run) and ONNX (paddle2onnx, INT8, run).

Used by export (artifacts) and by the teacher's labelling engines; imports Paddle lazily."""
