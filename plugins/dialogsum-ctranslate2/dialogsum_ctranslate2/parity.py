"""The CTranslate2 export's parity gate: the export must reproduce the PyTorch model it came from.

The float32 conversion is decoded by the predictor that will serve it, with the generation
options it will be given, and checked with dialogsum's :func:`check_token_parity`: greedy
tokens identical for every parity dialogue, 4-beam tokens for at least ``BEAM_AGREEMENT`` of
them (CTranslate2 has no exact counterpart of transformers' default beam stopping rule; see
:data:`~dialogsum_ctranslate2.predictor.BEAM_PATIENCE`). An int8 export is then reported as
its token agreement with the float32 one, which has passed the gate. Both records say how
often a dialogue's greedy summary stays the same when it shares a padded batch.
"""

from __future__ import annotations

from typing import Any

from dialogsum.plugin_api import (
    BEAMS,
    PARITY_NEW_TOKENS,
    GenerationOptions,
    ModelError,
    ModelManifest,
    agreement,
    check_token_parity,
    cut_at_eos,
    parity_dialogues,
    parity_sources,
)
from dialogsum_ctranslate2.predictor import BEAM_PATIENCE, CTranslate2Predictor

#: Token ids of the parity sources per beam count, each source decoded alone.
Tokens = dict[int, list[list[int]]]


def _options(beams: int) -> GenerationOptions:
    # What torch_tokens decodes with: no penalties, no minimum, early_stopping=False.
    return GenerationOptions(max_new_tokens=PARITY_NEW_TOKENS, num_beams=beams)


def decode_alone(
    predictor: CTranslate2Predictor, sources: list[list[int]], beams: int
) -> list[list[int]]:
    """Each source decoded in a batch of its own, cut after eos."""
    return [
        cut_at_eos(predictor.generate_ids([source], _options(beams))[0], predictor.eos_token_id)
        for source in sources
    ]


def decode_batched(
    predictor: CTranslate2Predictor, sources: list[list[int]], beams: int
) -> list[list[int]]:
    """All sources decoded as one padded batch, each row cut after eos."""
    rows = predictor.generate_ids(sources, _options(beams))
    return [cut_at_eos(row, predictor.eos_token_id) for row in rows]


def check_encoding(
    predictor: CTranslate2Predictor, tokenizer: Any, manifest: ModelManifest
) -> list[list[int]]:
    """The parity sources, refused when the export's tokenizer.json encodes them otherwise
    than the model's own tokenizer: served summaries would then read other tokens."""
    sources = parity_sources(tokenizer, manifest)
    served = predictor.encode(parity_dialogues(), warn=False)
    differing = sum(a != b for a, b in zip(sources, served, strict=True))
    if differing:
        raise ModelError(
            f"The CTranslate2 export's tokenizer.json encodes {differing} of {len(sources)} "
            f"parity dialogues differently from the model's tokenizer. Nothing was written. "
            f"Save the model with a fast tokenizer (tokenizer.json) that matches it."
        )
    return sources


def check_float32(
    model: Any, predictor: CTranslate2Predictor, sources: list[list[int]]
) -> tuple[dict[str, Any], Tokens]:
    """Gate the float32 export against ``model`` (PyTorch, CPU, float32); return the record
    for the manifest and the export's tokens. Raises :class:`ModelError` on a miss."""
    tokens: Tokens = {}

    def decode(rows: list[list[int]], beams: int) -> list[list[int]]:
        tokens[beams] = decode_alone(predictor, rows, beams)
        return tokens[beams]

    record = check_token_parity(
        model, sources, decode, eos=predictor.eos_token_id, what="The CTranslate2 export"
    )
    record["beam_patience"] = BEAM_PATIENCE
    record["batch_greedy_agreement"] = agreement(tokens[1], decode_batched(predictor, sources, 1))
    return record, tokens


def int8_record(
    predictor: CTranslate2Predictor, sources: list[list[int]], float32: Tokens
) -> dict[str, Any]:
    """How the int8 export's tokens compare with the float32 export's, alone and batched."""
    greedy = decode_alone(predictor, sources, 1)
    beams = decode_alone(predictor, sources, BEAMS)
    return {
        "dialogues": len(sources),
        "greedy_agreement_with_fp32": agreement(greedy, float32[1]),
        "beam4_agreement_with_fp32": agreement(beams, float32[BEAMS]),
        "batch_greedy_agreement": agreement(greedy, decode_batched(predictor, sources, 1)),
    }
