"""T5 models and tokenizers built from scratch, in-process: for tests, and for recipes that train
a model from nothing (``recipes/train_dialogsum_tiny.py``).

Everything here is built from the DialogSum sample that ships with the package (or texts the
caller gives), with no download and no network: a small SentencePiece-like (Unigram) tokenizer
wrapped as a :class:`transformers.T5TokenizerFast`, and a randomly initialised
:class:`transformers.T5ForConditionalGeneration` configured like FLAN-T5 but a few kilobytes in
size.

The tokenizer uses the same special-token ids as the real T5 vocabulary (``<pad>`` = 0,
``</s>`` = 1, ``<unk>`` = 2), appends ``</s>`` to every encoded sequence and normalises text the
way T5's SentencePiece model does (NFKC; runs of whitespace, newlines included, become one space;
the ends are stripped; case is kept). Training is deterministic, and the trained tokenizer is
cached per process, so building many tiny models is cheap.

Typical use::

    from dialogsum.training.tiny_models import build_tiny_t5

    tiny = build_tiny_t5()  # TinyT5(model, tokenizer), in memory
    model, tokenizer = tiny  # it is a NamedTuple
    path = build_tiny_t5(tmp_path / "tiny-t5")  # saved (safetensors + tokenizer.json)

Heavy dependencies (``torch``, ``transformers``, ``tokenizers``) are imported inside the
functions, so importing this module is cheap.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from dialogsum.data import sample_rows

if TYPE_CHECKING:
    from transformers import T5ForConditionalGeneration, T5TokenizerFast

__all__ = [
    "EOS_TOKEN",
    "EOS_TOKEN_ID",
    "MODEL_MAX_LENGTH",
    "PAD_TOKEN",
    "PAD_TOKEN_ID",
    "UNK_TOKEN",
    "UNK_TOKEN_ID",
    "TinyT5",
    "build_tiny_t5",
    "build_tiny_tokenizer",
    "save_tiny_t5",
]

PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
PAD_TOKEN_ID = 0
EOS_TOKEN_ID = 1
UNK_TOKEN_ID = 2
SPECIAL_TOKENS: tuple[str, str, str] = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)  # in id order

#: ``model_max_length`` of the FLAN-T5 tokenizers.
MODEL_MAX_LENGTH = 512

#: Every printable ASCII character is kept in the vocabulary, so ordinary English text never
#: turns into ``<unk>`` even when it uses a character the sample happens to lack.
_ASCII_ALPHABET: list[str] = [chr(c) for c in range(0x21, 0x7F)]


def _sample_texts() -> Iterator[str]:
    """Yield the dialogue and the summary of every train row of the shipped sample."""
    for row in sample_rows("train"):
        for key in ("dialogue", "summary"):
            value = row.get(key)
            if isinstance(value, str) and value:
                yield value


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _tokenizer_json(texts: tuple[str, ...] | None, vocab_size: int) -> str:
    """Train a Unigram tokenizer and return its ``tokenizer.json`` text (cached per process).

    Args:
        texts: The training texts, or ``None`` for the dialogues and summaries of the bundled
            sample's train split.
        vocab_size: The target vocabulary size, special tokens included.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from tokenizers.trainers import UnigramTrainer

    corpus = list(_sample_texts() if texts is None else texts)

    tokenizer = Tokenizer(models.Unigram())
    # What T5's SentencePiece normaliser (nmt_nfkc + remove_extra_whitespaces) does, minus its
    # precompiled character map: NFKC, any run of whitespace (newlines too) -> one space, and
    # no whitespace at either end.
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")

    trainer = UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        unk_token=UNK_TOKEN,
        initial_alphabet=_ASCII_ALPHABET,
        show_progress=False,
    )
    try:
        tokenizer.train_from_iterator(corpus, trainer=trainer)
    except Exception as error:  # tokenizers raises a bare Exception
        raise ValueError(
            f"cannot train a Unigram tokenizer with vocab_size={vocab_size}: {error}; the "
            "vocabulary must hold the 3 special tokens, every printable ASCII character and "
            "every other character of the training texts"
        ) from error
    tokenizer.model = models.Unigram(
        _rescored_vocab(tokenizer, corpus), unk_id=UNK_TOKEN_ID, byte_fallback=False
    )

    special_ids = (PAD_TOKEN_ID, EOS_TOKEN_ID, UNK_TOKEN_ID)
    for token, expected in zip(SPECIAL_TOKENS, special_ids, strict=True):
        actual = tokenizer.token_to_id(token)
        if actual != expected:  # pragma: no cover - guards against a tokenizers change
            raise RuntimeError(f"{token} got id {actual}, expected {expected}")

    tokenizer.post_processor = TemplateProcessing(
        single=f"$A {EOS_TOKEN}",
        pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}",
        special_tokens=[(EOS_TOKEN, EOS_TOKEN_ID)],
    )
    return tokenizer.to_str()


def _rescored_vocab(tokenizer: Any, corpus: list[str]) -> list[tuple[str, float]]:
    """Return the trained vocabulary with reproducible ids and scores.

    The ``tokenizers`` Unigram trainer picks the same pieces on every run, but its scores differ
    between processes in the last digits (parallel float sums) and the pieces it adds back at the
    end (rare characters) get their scores in hash-set order. To make the tokenizer identical on
    every run, each piece is re-scored from how often the trained model uses it on ``corpus``
    (one hard-EM step with add-one smoothing: ``log((count + 1) / total)``) and the pieces are
    ordered by descending score, then by text. Special tokens keep ids 0, 1, 2.
    """
    counts: Counter[str] = Counter()
    for encoding in tokenizer.encode_batch(corpus, add_special_tokens=False):
        counts.update(encoding.tokens)
    trained = json.loads(tokenizer.to_str())["model"]["vocab"]
    pieces = [str(piece) for piece, _ in trained if piece not in SPECIAL_TOKENS]
    total = sum(counts[piece] + 1 for piece in pieces)
    scored = [(piece, math.log((counts[piece] + 1) / total)) for piece in pieces]
    scored.sort(key=lambda item: (-item[1], item[0]))
    return [(token, 0.0) for token in SPECIAL_TOKENS] + scored


def build_tiny_tokenizer(
    texts: Iterable[str] | None = None, vocab_size: int = 400
) -> T5TokenizerFast:
    """Build a small T5-style tokenizer, trained in-process, with no download.

    A ``tokenizers`` Unigram model (the algorithm behind SentencePiece) with a Metaspace
    pre-tokenizer is trained on ``texts`` and wrapped as a :class:`~transformers.T5TokenizerFast`
    with T5's special tokens and ids (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2), no sentinel
    (``<extra_id_*>``) tokens and ``model_max_length`` = 512. Encoding appends ``</s>``, as T5
    does. Text is NFKC-normalised, whitespace runs (newlines too) collapse to one space and the
    ends are stripped, as in T5's SentencePiece model; case is kept.

    Training is deterministic, and the result is cached per process for each distinct
    ``(texts, vocab_size)``; every call returns a new, independent tokenizer object. It saves with
    ``save_pretrained`` (as ``tokenizer.json`` plus configs) and loads back with
    ``AutoTokenizer.from_pretrained``.

    Args:
        texts: Training texts; by default the dialogues and summaries of the bundled sample's
            train split (:func:`dialogsum.data.sample_rows`).
        vocab_size: Target vocabulary size, special tokens included. The result may be a little
            smaller if the corpus does not support that many pieces.

    Returns:
        The tokenizer.

    Raises:
        ValueError: If ``vocab_size`` cannot hold the special tokens and every character (all of
            printable ASCII plus the other characters of ``texts``); about 100 is the minimum.
    """
    from transformers import T5TokenizerFast

    key = None if texts is None else tuple(texts)
    tokenizer_object = _tokenizer_object(_tokenizer_json(key, vocab_size))
    return T5TokenizerFast(
        tokenizer_object=tokenizer_object,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        extra_ids=0,
        model_max_length=MODEL_MAX_LENGTH,
    )


def _tokenizer_object(tokenizer_json: str) -> Any:
    """Return a fresh ``tokenizers.Tokenizer`` from its JSON text."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class TinyT5(NamedTuple):
    """A tiny T5 model and its tokenizer; unpacks as ``model, tokenizer = tiny``."""

    model: T5ForConditionalGeneration
    tokenizer: T5TokenizerFast

    def save(self, output_dir: str | Path) -> Path:
        """Save the model (safetensors) and tokenizer into ``output_dir``; return its path.

        The folder loads with ``AutoModelForSeq2SeqLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained``.
        """
        path = Path(output_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        return path


@overload
def build_tiny_t5(
    output_dir: None = None,
    *,
    seed: int = 0,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    d_ff: int = 64,
    vocab_size: int | None = None,
    tokenizer_vocab_size: int = 400,
    dropout_rate: float = 0.0,
) -> TinyT5: ...


@overload
def build_tiny_t5(
    output_dir: str | Path,
    *,
    seed: int = 0,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    d_ff: int = 64,
    vocab_size: int | None = None,
    tokenizer_vocab_size: int = 400,
    dropout_rate: float = 0.0,
) -> Path: ...


def build_tiny_t5(
    output_dir: str | Path | None = None,
    *,
    seed: int = 0,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    d_ff: int = 64,
    vocab_size: int | None = None,
    tokenizer_vocab_size: int = 400,
    dropout_rate: float = 0.0,
) -> TinyT5 | Path:
    """Build a randomly initialised, FLAN-T5-shaped ``T5ForConditionalGeneration``.

    The configuration mirrors FLAN-T5 (gated-GELU feed-forward, untied input and output
    embeddings, relative attention position buckets, ``decoder_start_token_id`` = pad = 0,
    eos = 1) at a tiny size. Weights come from ``seed`` alone: the same arguments give identical
    weights, and the caller's global torch RNG state is left untouched. The model is returned in
    eval mode, like one from ``from_pretrained``. Its ``generation_config`` sets
    ``max_new_tokens=64`` (instead of transformers' default ``max_length=20``),
    ``decoder_start_token_id=0``, ``pad_token_id=0`` and ``eos_token_id=1``.

    Args:
        output_dir: If given, save the model (safetensors) and tokenizer there and return the
            folder's path; otherwise return them in memory.
        seed: Seed of the weight initialisation.
        d_model: Hidden size; ``d_kv`` is ``d_model // num_heads``.
        num_layers: Encoder layers; the decoder has as many.
        num_heads: Attention heads; must divide ``d_model``.
        d_ff: Feed-forward inner size.
        vocab_size: Rows of the embedding matrices; ``None`` means the tokenizer's size. A larger
            value mimics FLAN-T5, whose embeddings (32128) outnumber its tokenizer's ids (32100).
        tokenizer_vocab_size: ``vocab_size`` passed to :func:`build_tiny_tokenizer`.
        dropout_rate: Dropout of the model (FLAN-T5 uses 0.1; 0.0 keeps tiny training runs
            steady).

    Returns:
        A :class:`TinyT5` ``(model, tokenizer)`` when ``output_dir`` is ``None``, else the path
        of the saved folder.

    Raises:
        ValueError: If ``num_heads`` does not divide ``d_model`` or ``vocab_size`` is smaller
            than the tokenizer.
    """
    import torch
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    if d_model % num_heads:
        raise ValueError(f"num_heads ({num_heads}) must divide d_model ({d_model})")
    tokenizer = build_tiny_tokenizer(vocab_size=tokenizer_vocab_size)
    n_tokens = len(tokenizer)
    if vocab_size is None:
        vocab_size = n_tokens
    elif vocab_size < n_tokens:
        raise ValueError(f"vocab_size ({vocab_size}) is smaller than the tokenizer ({n_tokens})")

    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        dropout_rate=dropout_rate,
        layer_norm_epsilon=1e-6,
        initializer_factor=1.0,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        is_encoder_decoder=True,
        use_cache=True,
        pad_token_id=PAD_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        decoder_start_token_id=PAD_TOKEN_ID,
        architectures=["T5ForConditionalGeneration"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=PAD_TOKEN_ID,
        pad_token_id=PAD_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        max_new_tokens=64,
    )
    model.eval()

    tiny = TinyT5(model=model, tokenizer=tokenizer)
    if output_dir is None:
        return tiny
    return tiny.save(output_dir)


def save_tiny_t5(
    output_dir: str | Path,
    *,
    seed: int = 0,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    d_ff: int = 64,
    vocab_size: int | None = None,
    tokenizer_vocab_size: int = 400,
    dropout_rate: float = 0.0,
) -> Path:
    """Build a tiny T5 (see :func:`build_tiny_t5`) and save it into ``output_dir``.

    Returns:
        The path of the folder, loadable with ``AutoModelForSeq2SeqLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained``.
    """
    return build_tiny_t5(
        output_dir,
        seed=seed,
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        d_ff=d_ff,
        vocab_size=vocab_size,
        tokenizer_vocab_size=tokenizer_vocab_size,
        dropout_rate=dropout_rate,
    )
