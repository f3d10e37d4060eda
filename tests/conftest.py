"""Shared test set-up. Importing distill first makes Paddle safe to import (see distill/__init__)."""
import distill  # noqa: F401
