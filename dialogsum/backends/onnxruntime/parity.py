"""The onnxruntime export's parity gate: the export must reproduce the PyTorch model it came from.

fp32 exports are checked against PyTorch with :mod:`dialogsum.parity` (greedy and 4-beam
tokens) and, here, on first-step logits; int8 exports are reported as token agreement with the
fp32 export, and refused when a dialogue's logits change in a batch. Results go into the
export's manifest.
"""

from __future__ import annotations

from typing import Any

from dialogsum.plugin_api import (
    PARITY_NEW_TOKENS,
    GenerationOptions,
    ModelError,
    agreement,
    check_token_parity,
    cut_at_eos,
    pad_batch,
    parity_dialogues,
    torch_first_logits,
)

#: Logits may differ by this much, relative to the largest logit magnitude (at least 1).
LOGITS_TOLERANCE = 1e-4


def _onnx_decode(
    onnx: Any, sources: list[list[int]], beams: int, adapter: str | None = None
) -> list[list[int]]:
    """Each of ``sources`` decoded alone (with ``adapter``, if given), cut at eos."""
    options = GenerationOptions(max_new_tokens=PARITY_NEW_TOKENS, num_beams=beams)
    return [
        cut_at_eos(
            onnx.generate_ids([s], [[1] * len(s)], options, None, [adapter])[0],
            onnx.eos_token_id,
        )
        for s in sources
    ]


def _onnx_decode_batched(
    onnx: Any, sources: list[list[int]], beams: int, adapters: list[str | None] | None = None
) -> list[list[int]]:
    """All ``sources`` decoded as one padded batch (row ``i`` with ``adapters[i]``, if given),
    each row's own result, cut at eos."""
    options = GenerationOptions(max_new_tokens=PARITY_NEW_TOKENS, num_beams=beams)
    ids, mask = pad_batch(sources, onnx.pad_token_id)
    rows = onnx.generate_ids(ids, mask, options, None, adapters)
    return [cut_at_eos(row, onnx.eos_token_id) for row in rows]


def _batch_logits_difference(onnx: Any, sources: list[list[int]], tokens: list[list[int]]) -> float:
    """Largest logits difference, over every step of decoding ``tokens`` forced, between
    each source alone and all of them in one padded batch."""
    import numpy as np

    width = max(1, *(len(t) for t in tokens)) - 1
    # Rows that ended early go on with pad tokens: their later logits are compared as well.
    forced = [(t + [onnx.pad_token_id] * width)[:width] for t in tokens]
    ids, mask = pad_batch(sources, onnx.pad_token_id)
    batched = onnx.step_logits(ids, mask, forced)
    alone = np.concatenate(
        [onnx.step_logits([s], [[1] * len(s)], [f]) for s, f in zip(sources, forced, strict=True)]
    )
    return float(np.abs(batched - alone).max())


def check_parity(model: Any, onnx: Any, sources: list[list[int]]) -> tuple[dict[str, Any], Any]:
    """Compare the fp32 export ``onnx`` (an ``OnnxPredictor``) with ``model`` on ``sources``
    (the parity dialogues as ``onnx`` encodes them).

    Returns the parity record and the export's greedy tokens per source, which
    :func:`check_int8_parity` compares the int8 export with. Raises :class:`ModelError` when
    the export misses the gate, so it is never written.
    """
    import numpy as np

    model.eval()  # dropout off: the reference must be deterministic
    ids, mask = pad_batch(sources, onnx.pad_token_id)
    torch_logits = torch_first_logits(model, ids, mask, onnx.start_token_id)
    difference = float(np.abs(torch_logits - onnx.first_step_logits(ids, mask)).max())
    scale = max(1.0, float(np.abs(torch_logits).max()))
    decoded: dict[int, list[list[int]]] = {}

    def decode(rows: list[list[int]], beams: int) -> list[list[int]]:
        decoded[beams] = _onnx_decode(onnx, rows, beams)
        return decoded[beams]

    tokens = check_token_parity(
        model, sources, decode, eos=onnx.eos_token_id, what="The ONNX export"
    )
    if difference > LOGITS_TOLERANCE * scale:
        raise ModelError(
            f"The ONNX export does not match the PyTorch model: largest first-step logits "
            f"difference {difference:.2e}, tolerance {LOGITS_TOLERANCE * scale:.2e}, over "
            f"{len(sources)} dialogues. Nothing was written. Please report this with the "
            f"model's config."
        )
    record = {
        "dialogues": len(sources),
        "new_tokens": PARITY_NEW_TOKENS,
        "max_abs_logits_difference": difference,
        "logits_scale": scale,
        "greedy_identical": tokens["greedy_identical"],
        "beam4_identical": tokens["beam4_identical"],
        "passed": True,
    }
    return record, decoded[1]


def check_int8_parity(
    onnx: Any, sources: list[list[int]], fp32_greedy: list[list[int]]
) -> dict[str, Any]:
    """Compare the int8 export ``onnx`` with the fp32 export's greedy tokens ``fp32_greedy``
    (from :func:`check_parity`, on the same ``sources``).

    The fp32 tokens are passed rather than decoded again: the fp32 graphs were checked a
    moment before, and keeping a copy of them to load a second time cost a copy of the
    export and a second set of sessions. Raises :class:`ModelError` when a dialogue's
    logits change in a batch.
    """
    greedy = _onnx_decode(onnx, sources, 1)
    # A server batches strangers' requests together: a summary must not depend on them.
    # Per-row activation scales and the decoder's masked cross-attention tail make every
    # step's logits the same alone and in a padded batch (per-tensor scales moved them by
    # percents). Checked on every step of the batch's own greedy decode, forced; an export
    # whose greedy summaries change in a batch is refused.
    batched_tokens = _onnx_decode_batched(onnx, sources, 1)
    difference = _batch_logits_difference(onnx, sources, batched_tokens)
    batch_agreement = agreement(greedy, batched_tokens)
    if difference > LOGITS_TOLERANCE or batch_agreement < 1.0:
        raise ModelError(
            f"The int8 export's logits for a dialogue change when it shares a batch "
            f"(largest difference {difference:.2e} over {PARITY_NEW_TOKENS} steps; greedy "
            f"summaries identical alone and in a batch for {batch_agreement:.0%} of "
            f"{len(sources)} dialogues): served summaries would depend on other requests, "
            f"giving a different summary in a batch than alone. "
            f"Nothing was written; export without quantize (fp32), and please report this "
            f"with the model's config and your CPU (lscpu)."
        )
    return {
        "dialogues": len(sources),
        "greedy_agreement_with_fp32": agreement(greedy, fp32_greedy),
        "batch_logits_difference": difference,
        "batch_greedy_agreement": batch_agreement,
    }


#: An adapter's first-step logits may differ from its PyTorch model's by this much, relative to
#: the largest logit magnitude: its low-rank branch runs in int8 (see adapter_slots), and a
#: wrong slot or scale is off by far more.
ADAPTER_LOGITS_TOLERANCE = 0.05


def check_adapter_parity(model: Any, onnx: Any, adapter: str) -> dict[str, Any]:
    """Compare adapter ``adapter``, served unmerged by ``onnx`` (an ``OnnxPredictor`` of the
    export), with its peft ``model``.

    Refused (:class:`ModelError`, nothing written): first-step logits off by more than
    ``ADAPTER_LOGITS_TOLERANCE`` of their scale (a wrong slot or scale is off by far more), or
    a dialogue whose greedy summary changes when it shares a batch with rows of the base model.
    The share of greedy and 4-beam outputs equal to PyTorch's is recorded, as an int8 export's
    agreement is: the int8 branch moves near-ties (docs/benchmarks.md has its ROUGE).
    """
    import numpy as np

    model.eval()
    texts = parity_dialogues()
    sources = onnx.encode(texts, warn=False, adapter=adapter)
    rows: list[str | None] = [adapter] * len(sources)
    ids, mask = pad_batch(sources, onnx.pad_token_id)
    torch_logits = torch_first_logits(model, ids, mask, onnx.start_token_id)
    difference = float(np.abs(torch_logits - onnx.first_step_logits(ids, mask, rows)).max())
    scale = max(1.0, float(np.abs(torch_logits).max()))
    if difference > ADAPTER_LOGITS_TOLERANCE * scale:
        raise ModelError(
            f"Adapter {adapter!r} served unmerged does not match its PyTorch model: largest "
            f"first-step logits difference {difference:.2e}, tolerance "
            f"{ADAPTER_LOGITS_TOLERANCE * scale:.2e}. Nothing was written. Please report this "
            f"with the adapter's adapter_config.json."
        )

    decoded: dict[int, list[list[int]]] = {}

    def decode(chosen: list[list[int]], beams: int) -> list[list[int]]:
        decoded[beams] = _onnx_decode(onnx, chosen, beams, adapter)
        return decoded[beams]

    tokens = check_token_parity(
        model,
        sources,
        decode,
        eos=onnx.eos_token_id,
        what=f"Adapter {adapter!r} served unmerged",
        greedy_required=0.0,
        beam_required=0.0,
    )
    # Beside rows of the base model (other prompts, other lengths), each row must decode as
    # alone: as the greedy decode the token check just ran (decoding is deterministic, so it
    # is not run twice).
    alone = decoded[1]
    base_sources = onnx.encode(texts, warn=False)
    mixed = _onnx_decode_batched(
        onnx, [*sources, *base_sources], 1, [*rows, *([None] * len(base_sources))]
    )[: len(sources)]
    mixed_agreement = agreement(alone, mixed)
    if mixed_agreement < 1.0:
        raise ModelError(
            f"Adapter {adapter!r}'s summaries change when its dialogues share a batch with the "
            f"base model's ({mixed_agreement:.0%} identical): served summaries would depend on "
            f"other requests. Nothing was written; please report this with your CPU (lscpu)."
        )
    return {
        **tokens,
        "max_abs_logits_difference": difference,
        "logits_scale": scale,
        "mixed_batch_greedy_agreement": mixed_agreement,
    }
