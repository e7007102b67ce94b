"""What every model's forward returns: the training loss of its paper equation, and named parts.

SignMAE (section 3.2, eq. 2), the sign-to-text mapping and the back-translation judge (section 3.4,
eq. 3; section 4.1), the text-to-sign mapping (section 3.4, eq. 4-6) and the recognition head
(section 5) all return a ModelOutput, so one training loop calls `model(*batch).loss` for each.
Inference has named methods on each model (encode, decode, greedy, beam_search, generate, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class ModelOutput:
    """loss: the scalar to minimise. metrics: named parts of it for logging (detached, so holding
    them keeps no graph alive), e.g. text-to-sign's eq. 4 and eq. 5 terms; empty when the loss has
    no parts. A dataclass, so DistributedDataParallel finds the loss tensor inside it."""

    loss: torch.Tensor  # ()
    metrics: Mapping[str, torch.Tensor | float] = field(default_factory=dict)
