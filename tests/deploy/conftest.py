"""Deployment checks: no container engine or cluster needed. Kubernetes
manifests are rendered with `kubectl kustomize` and validated offline against
the Kubernetes schemas; compose files and Dockerfiles are read as text."""

from __future__ import annotations

import sys
from pathlib import Path

# The test modules share deploy_support.py, next to this file (pytest runs
# with --import-mode=importlib, which puts no test directory on sys.path).
sys.path.insert(0, str(Path(__file__).parent))
