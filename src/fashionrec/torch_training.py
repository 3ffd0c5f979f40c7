"""What the localiser's and the kind classifier's training recipes share (PyTorch): a resumable run (checkpoint after
every epoch, resumed from the work dir, refused when the configuration changed), the learning-rate schedule, and the
export of a network's probabilities to ONNX with fashionrec's metadata."""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fashionrec.atomic import write_atomically

logger = logging.getLogger(__name__)


def cosine_schedule(optimiser: torch.optim.Optimizer, total_steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to zero at ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(step, total_steps) / total_steps)))


class Run:
    """One resumable training run in ``work_dir``: ``epoch`` and ``history`` so far, restored by :meth:`resume`,
    saved by :meth:`end_epoch` (atomically: a run killed at any moment resumes from its last finished epoch)."""

    def __init__(self, work_dir: Path, config: dict[str, Any], model: nn.Module, optimiser: torch.optim.Optimizer,
                 schedule: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator) -> None:
        self.checkpoint = work_dir / "checkpoint.pt"
        self.config, self.model, self.optimiser, self.schedule, self.generator = (
            config, model, optimiser, schedule, generator)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.started = time.time()
        work_dir.mkdir(parents=True, exist_ok=True)

    def resume(self, device: torch.device) -> None:
        """Continue from the work dir's checkpoint, when there is one made with the same configuration."""
        if not self.checkpoint.is_file():
            return
        state = torch.load(self.checkpoint, map_location=device, weights_only=False)
        if state["config"] != self.config:
            raise SystemExit(f"{self.checkpoint} was made with another configuration; use another work dir")
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"].to(self.generator.get_state().device))
        self.epoch, self.history = state["epoch"], state["history"]
        logger.info("resuming after epoch %d", self.epoch)

    def end_epoch(self, losses: Sequence[float], epochs: int) -> None:
        """Record the epoch's mean loss and save the checkpoint."""
        self.epoch += 1
        self.history.append({"epoch": self.epoch, "loss": round(float(np.mean(losses)), 4),
                             "seconds": round(time.time() - self.started, 1)})
        logger.info("epoch %d/%d loss %.4f (%.0f s)", self.epoch, epochs, self.history[-1]["loss"],
                    time.time() - self.started)
        buffer = io.BytesIO()
        torch.save({"config": self.config, "model": self.model.state_dict(), "optimiser": self.optimiser.state_dict(),
                    "schedule": self.schedule.state_dict(), "generator": self.generator.get_state().cpu(),
                    "epoch": self.epoch, "history": self.history}, buffer)
        write_atomically(self.checkpoint, buffer.getvalue())


def export_probabilities(model: nn.Module, input_shape: Sequence[int], key: str, meta: dict[str, Any]) -> bytes:
    """``model`` (its ``probabilities`` switch on while exporting) as ONNX bytes: input ``pixels`` and output
    ``probabilities`` with a dynamic batch axis, ``meta`` as JSON under the metadata ``key``."""
    import onnx

    model = model.cpu().eval()
    model.probabilities = True  # type: ignore[assignment]  # both recipes' networks have the switch
    buffer = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(model, (torch.zeros(1, *input_shape),), buffer,  # type: ignore[arg-type]
                              input_names=["pixels"], output_names=["probabilities"],
                              dynamic_axes={"pixels": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17,
                              dynamo=False)
    finally:
        model.probabilities = False  # type: ignore[assignment]
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, json.dumps(meta)
    return bytes(proto.SerializeToString())
