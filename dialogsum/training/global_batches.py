"""Global batches that do not depend on how many processes train them.

With W processes of per-device batch B, one optimizer step trains on a global batch of W*B
examples. Two things in the stock Trainer make that step differ from one process with batch
W*B; both are fixed here, so a run's weights and losses do not depend on its launch layout:

- Order. The Trainer's length-grouped sampler groups by the *per-device* batch and draws its
  order from the global RNG, which each process advances differently. :class:`GlobalBatchSampler`
  groups by the global batch and draws its order from (seed, epoch) alone; accelerate deals its
  stream out to the processes batch by batch, so step k trains on the same examples at any W.
- Loss. A seq2seq model's own loss is the mean over its batch's target tokens, and DDP averages
  those means: a process with few target tokens weighs as much as one with many.
  :func:`token_mean_loss` divides the summed loss by the target tokens of the whole global batch
  (the Trainer counts them across processes and accumulation steps), which also makes gradient
  accumulation exact.

Imported only when training starts (it imports torch and transformers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import Seq2SeqTrainer
from transformers.trainer_pt_utils import get_length_grouped_indices

from dialogsum.training.features import IGNORE_INDEX


class GlobalBatchSampler(Sampler[int]):
    """Indices in length-grouped global batches: one stream, whatever the number of processes.

    Consecutive runs of ``global_batch_size`` indices have similar lengths (little padding), as
    with transformers' ``group_by_length``; the shuffle is seeded by ``seed`` and the epoch.
    """

    def __init__(self, lengths: Sequence[int], global_batch_size: int, seed: int) -> None:
        self.lengths = list(lengths)
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch`` (the Trainer calls this before each epoch, resumes included)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)
        order = get_length_grouped_indices(
            self.lengths, self.global_batch_size, generator=generator
        )
        return iter(order)


def token_mean_loss(
    outputs: Any,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    *,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy summed over this batch's target tokens, divided by the global batch's.

    ``num_items_in_batch`` is the Trainer's count of target tokens in the whole optimizer step
    (every process, every accumulated batch); without it (evaluation) this batch's own count is
    used. Label smoothing is the Trainer's: ``(1 - e) * nll + e * mean over the vocabulary``.
    """
    logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
    flat_labels = labels.reshape(-1).to(logits.device)
    summed = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        flat_labels,
        ignore_index=IGNORE_INDEX,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    count = flat_labels.ne(IGNORE_INDEX).sum() if num_items_in_batch is None else num_items_in_batch
    return summed / torch.as_tensor(count, device=summed.device).clamp(min=1)


class GlobalBatchTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose training batches come from :class:`GlobalBatchSampler`."""

    def _get_train_sampler(self, train_dataset: Any = None) -> GlobalBatchSampler:
        dataset: Any = self.train_dataset if train_dataset is None else train_dataset
        args = self.args
        global_batch = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        return GlobalBatchSampler(
            [len(feature["input_ids"]) for feature in dataset], global_batch, seed=args.seed
        )
