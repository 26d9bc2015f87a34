"""The parity gate every exporting backend can use: an export must reproduce its PyTorch model.

A backend's ``export`` encodes the parity dialogues as its own loader will
(:func:`parity_sources`), decodes them with the export, greedily and with 4 beams, and hands
its decoder to :func:`check_token_parity`, which decodes the same ids with the PyTorch model
one by one and refuses an export whose tokens differ. The result goes into the export record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dialogsum.adapters import base_of
from dialogsum.errors import ModelError
from dialogsum.generation import cut_at_eos, encode_sources
from dialogsum.modeling import ModelManifest

#: Share of inputs whose 4-beam outputs must be identical (near-ties may flip a beam).
BEAM_AGREEMENT = 0.95
BEAMS = 4
PARITY_NEW_TOKENS = 32

#: ``decode(sources, beams)``: an export's token ids for each source, decoded one by one.
Decode = Callable[[list[list[int]], int], list[list[int]]]


def parity_dialogues(count: int = 8) -> list[str]:
    """The fixed dialogues parity runs on: the first of the shipped DialogSum test sample."""
    from dialogsum.data import load_examples, sample_path

    return [e.dialogue for e in load_examples(sample_path("test"), "test")[:count]]


def parity_sources(
    tokenizer: Any, manifest: ModelManifest, dialogues: list[str] | None = None
) -> list[list[int]]:
    """Prompted, truncated token ids of the parity dialogues, as every backend encodes them."""
    sources, _ = encode_sources(dialogues or parity_dialogues(), tokenizer, manifest.data)
    return sources


def agreement(first: list[list[int]], second: list[list[int]]) -> float:
    """The share of rows whose token ids are identical."""
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def torch_tokens(
    model: Any, sources: list[list[int]], eos: int, new_tokens: int, beams: int
) -> list[list[int]]:
    """The PyTorch model's token ids for each source, decoded alone, cut after eos."""
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
    model.eval()  # dropout off: the reference must be deterministic
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


def torch_first_logits(model: Any, ids: list[list[int]], mask: list[list[int]], start: int) -> Any:
    """The PyTorch model's first-step logits (rows x vocabulary) for a padded batch."""
    import torch

    model.eval()
    with torch.inference_mode():
        output = model(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            decoder_input_ids=torch.full((len(ids), 1), start, dtype=torch.long),
        )
    return output.logits[:, -1].float().numpy()


def check_token_parity(
    model: Any,
    sources: list[list[int]],
    decode: Decode,
    *,
    eos: int,
    what: str,
    greedy_required: float = 1.0,
    beam_required: float = BEAM_AGREEMENT,
) -> dict[str, Any]:
    """Compare an export's greedy and 4-beam tokens with ``model``'s; refuse a mismatch.

    ``model`` is the PyTorch model exported (on the CPU, in float32), ``sources`` the token
    ids from :func:`parity_sources`, ``decode`` the export's decoder. Returns the record to
    keep in the manifest's ``parity``; raises :class:`ModelError` naming ``what`` (e.g.
    "The CTranslate2 export") when fewer than ``greedy_required`` of the greedy outputs or
    ``beam_required`` of the 4-beam outputs are identical.
    """
    greedy = agreement(decode(sources, 1), torch_tokens(model, sources, eos, PARITY_NEW_TOKENS, 1))
    beam = agreement(
        decode(sources, BEAMS), torch_tokens(model, sources, eos, PARITY_NEW_TOKENS, BEAMS)
    )
    result: dict[str, Any] = {
        "dialogues": len(sources),
        "new_tokens": PARITY_NEW_TOKENS,
        "greedy_identical": greedy,
        "beam4_identical": beam,
        "passed": greedy >= greedy_required and beam >= beam_required,
    }
    if not result["passed"]:
        raise ModelError(
            f"{what} does not match the PyTorch model: greedy outputs identical for "
            f"{greedy:.0%} (required {greedy_required:.0%}) and 4-beam outputs for {beam:.0%} "
            f"(required {beam_required:.0%}) of {len(sources)} dialogues. Nothing was written. "
            f"Please report this with the model's config."
        )
    return result
