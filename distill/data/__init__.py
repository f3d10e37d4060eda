"""Data: examples and their readers/writers, batching, the built-in catalogue (fetch), augmentation."""
