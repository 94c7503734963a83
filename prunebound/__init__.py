"""prunebound: the theory of neural-network pruning and compression, checked numerically.

Subpackages: :mod:`prunebound.bounds` (generalization bounds), :mod:`prunebound.coresets` (provable
sampling-based pruning), :mod:`prunebound.subnet_search` (subset-sum and strong lottery tickets),
:mod:`prunebound.pruning` (classic baselines), :mod:`prunebound.paper_repro` (figures for papers).
"""

from prunebound.certificate import BoundTerms, Certificate, verify
from prunebound.data import Dataset, Split, TeacherTask, teacher_task
from prunebound.errors import (
    CertificateError,
    ConcurrentRunError,
    DataError,
    DataSpecError,
    InvalidParameterError,
    PruneboundError,
    UnsafeCheckpointError,
    UnsafeOutputError,
    UnsupportedLayerError,
)
from prunebound.network import Layer, Network

__version__ = "0.1.0"

__all__ = [
    "BoundTerms",
    "Certificate",
    "verify",
    "Dataset",
    "Split",
    "TeacherTask",
    "teacher_task",
    "DataError",
    "InvalidParameterError",
    "PruneboundError",
    "UnsafeCheckpointError",
    "UnsupportedLayerError",
    "CertificateError",
    "ConcurrentRunError",
    "DataSpecError",
    "UnsafeOutputError",
    "Layer",
    "Network",
    "__version__",
]
