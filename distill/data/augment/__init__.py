"""Augmentation (Tang et al. 2019): masking, same-POS replacement and n-gram sampling.

``rules`` holds the pure rule functions, ``postag`` the part-of-speech taggers, ``augmenter`` the
file/row driver. The public API::

    from distill.data.augment import AugmentConfig, augment_texts
"""
from distill.data.augment.augmenter import (AugmentConfig, augment_examples, augment_file,
                                            augment_texts, mask_token_for)

__all__ = ["AugmentConfig", "augment_examples", "augment_file", "augment_texts", "mask_token_for"]
