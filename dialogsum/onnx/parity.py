"""The parity gate: an ONNX export must reproduce the PyTorch model it came from.

fp32 exports are checked against PyTorch (first-step logits and greedy tokens); int8 exports
are reported as token agreement with the fp32 export. Results go into the export's manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialogsum.adapters import base_of
from dialogsum.errors import ModelError
from dialogsum.generation import GenerationOptions, pad_batch
from dialogsum.modeling import ModelManifest
from dialogsum.onnx.decoding import cut_at_eos

#: Logits may differ by this much, relative to the largest logit magnitude (at least 1).
LOGITS_TOLERANCE = 1e-4
#: Share of inputs whose 4-beam outputs must be identical (near-ties may flip a beam).
BEAM_AGREEMENT = 0.95
BEAMS = 4
PARITY_NEW_TOKENS = 32


def default_dialogues(count: int = 8) -> list[str]:
    """The fixed dialogues parity runs on: the first of the shipped DialogSum test sample."""
    from dialogsum.data import load_examples, sample_path

    return [e.dialogue for e in load_examples(sample_path("test"), "test")[:count]]


def _torch_decode(
    model: Any, sources: list[list[int]], eos: int, new_tokens: int, beams: int
) -> list[list[int]]:
    import torch
    from transformers import GenerationConfig

    # Decode with a fresh config in place of the model's own: decoding defaults a model ships
    # with (no-repeat n-grams, minimum lengths) would otherwise apply on this side only, and the
    # two sides would differ in their search, not in their numbers. Passing the fresh config to
    # generate() is not enough: transformers fills its default-valued fields from the model's.
    # A peft model generates through its base model, whose config is the one read.
    owner = base_of(model)
    shipped = owner.generation_config
    owner.generation_config = GenerationConfig(
        max_new_tokens=new_tokens,
        num_beams=beams,
        do_sample=False,
        length_penalty=1.0,
        early_stopping=False,
        eos_token_id=eos,
        pad_token_id=owner.config.pad_token_id,
        decoder_start_token_id=owner.config.decoder_start_token_id,
    )
    results = []
    try:
        with torch.inference_mode():
            for ids in sources:  # one by one: padding must not be what makes the two differ
                output = model.generate(
                    input_ids=torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                )
                results.append(cut_at_eos(output[0, 1:].tolist(), eos))
    finally:
        owner.generation_config = shipped
    return results


def _torch_first_logits(model: Any, ids: list[list[int]], mask: list[list[int]], start: int) -> Any:
    import torch

    with torch.inference_mode():
        output = model(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            decoder_input_ids=torch.full((len(ids), 1), start, dtype=torch.long),
        )
    return output.logits[:, -1].float().numpy()


def _onnx_decode(onnx: Any, sources: list[list[int]], beams: int) -> list[list[int]]:
    options = GenerationOptions(max_new_tokens=PARITY_NEW_TOKENS, num_beams=beams)
    return [
        cut_at_eos(onnx.generate_ids([s], [[1] * len(s)], options)[0], onnx.eos_token_id)
        for s in sources
    ]


def _onnx_decode_batched(onnx: Any, sources: list[list[int]], beams: int) -> list[list[int]]:
    """All ``sources`` decoded as one padded batch (each row's own result, cut at eos)."""
    options = GenerationOptions(max_new_tokens=PARITY_NEW_TOKENS, num_beams=beams)
    ids, mask = pad_batch(sources, onnx.pad_token_id)
    return [cut_at_eos(row, onnx.eos_token_id) for row in onnx.generate_ids(ids, mask, options)]


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


def _agreement(first: list[list[int]], second: list[list[int]]) -> float:
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def check_parity(
    model: Any,
    tokenizer: Any,
    export_dir: Path,
    manifest: ModelManifest,
    *,
    dialogues: list[str] | None = None,
    reference: Path | None = None,
) -> dict[str, Any]:
    """Compare the export in ``export_dir`` with ``model`` (or with the export in ``reference``).

    Raises :class:`ModelError` when an fp32 export misses the gate, so it is never written.
    """
    import numpy as np

    from dialogsum.onnx.predictor import OnnxPredictor

    model.eval()  # dropout off: the reference must be deterministic
    texts = dialogues or default_dialogues()
    onnx = OnnxPredictor(export_dir, progress=False)
    sources = onnx.encode(texts, warn=False)  # parity compares cut inputs on both sides
    greedy = _onnx_decode(onnx, sources, 1)
    if reference is not None:
        fp32 = OnnxPredictor(reference, progress=False)
        # A server batches strangers' requests together: a summary must not depend on them.
        # Per-row activation scales and the decoder's masked cross-attention tail make every
        # step's logits the same alone and in a padded batch (per-tensor scales moved them by
        # percents). Checked on every step of the batch's own greedy decode, forced; an export
        # whose greedy summaries change in a batch is refused.
        batched_tokens = _onnx_decode_batched(onnx, sources, 1)
        difference = _batch_logits_difference(onnx, sources, batched_tokens)
        batch_agreement = _agreement(greedy, batched_tokens)
        if difference > LOGITS_TOLERANCE or batch_agreement < 1.0:
            raise ModelError(
                f"The int8 export's logits for a dialogue change when it shares a batch "
                f"(largest difference {difference:.2e} over {PARITY_NEW_TOKENS} steps; greedy "
                f"summaries identical alone and in a batch for {batch_agreement:.0%} of "
                f"{len(texts)} dialogues): served summaries would depend on other requests, "
                f"giving a different summary in a batch than alone. "
                f"Nothing was written; export without quantize (fp32), and please report this "
                f"with the model's config and your CPU (lscpu)."
            )
        return {
            "dialogues": len(texts),
            "greedy_agreement_with_fp32": _agreement(greedy, _onnx_decode(fp32, sources, 1)),
            "batch_logits_difference": difference,
            "batch_greedy_agreement": batch_agreement,
        }
    eos = onnx.eos_token_id
    ids, mask = pad_batch(sources, onnx.pad_token_id)
    torch_logits = _torch_first_logits(model, ids, mask, onnx.start_token_id)
    difference = float(np.abs(torch_logits - onnx.first_step_logits(ids, mask)).max())
    scale = max(1.0, float(np.abs(torch_logits).max()))
    identical = _agreement(greedy, _torch_decode(model, sources, eos, PARITY_NEW_TOKENS, 1))
    beam = _agreement(
        _onnx_decode(onnx, sources, BEAMS),
        _torch_decode(model, sources, eos, PARITY_NEW_TOKENS, BEAMS),
    )
    result = {
        "dialogues": len(texts),
        "new_tokens": PARITY_NEW_TOKENS,
        "max_abs_logits_difference": difference,
        "logits_scale": scale,
        "greedy_identical": identical,
        "beam4_identical": beam,
        "passed": difference <= LOGITS_TOLERANCE * scale
        and identical == 1.0
        and beam >= BEAM_AGREEMENT,
    }
    if not result["passed"]:
        raise ModelError(
            f"The ONNX export does not match the PyTorch model (largest logits difference "
            f"{difference:.2e}, tolerance {LOGITS_TOLERANCE * scale:.2e}; greedy outputs identical "
            f"for {identical:.0%} and 4-beam outputs for {beam:.0%} of {len(texts)} dialogues). "
            f"Nothing was written. Please report this with the model's config."
        )
    return result
