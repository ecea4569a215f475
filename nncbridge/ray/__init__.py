"""nncbridge on a Ray cluster (the ``ray`` extra: ``pip install "nncbridge[ray]"``).

``predict_dataset`` adds a model's outputs to a Ray Dataset; ``predict_csv`` is ``nncbridge predict
--ray``. Ray is imported when one of them is called, never by ``import nncbridge``; without it they
raise ``nncbridge.BackendError`` saying how to install it.
"""
from __future__ import annotations

from .batch import predict_csv
from .cluster import connected
from .data import predict_dataset

__all__ = ["connected", "predict_csv", "predict_dataset"]
