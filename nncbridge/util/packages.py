"""Installed package versions without importing the packages, nor ``importlib.metadata`` (which
imports the ``email`` package and more: about a sixth of the CPU time of ``nncbridge convert`` on LeNet)."""
from __future__ import annotations

import os
import re
import sys


def installed_version(distribution: str) -> str | None:
    """The version of ``distribution`` from its ``NAME-VERSION.dist-info`` folder, searched along
    ``sys.path`` in order as ``importlib.metadata`` does; ``importlib.metadata`` itself for other
    layouts (``.egg-info``, zip imports). ``None`` if it is not installed."""
    prefix = re.sub(r"[-_.]+", "_", distribution).lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and name.lower().startswith(prefix):
                return name[len(prefix):-len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
