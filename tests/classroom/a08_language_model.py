"""Simulated learners of lesson 08: perplexity, train_stream, temperature_probs, sample_next.

The four exercises are independent (each solution stands alone: sample_next does
not call temperature_probs), so each wrong submission below must cost exactly its
own exercise's points. The differently written correct answer samples by
Gumbel-max, which draws a different random stream from the solution's
multinomial: the sampler's check is statistical, so it must still score full marks.
"""
from .submissions import Submission
from .wrong import body
from .wrong_language_model import (
    perplexity_indexing, perplexity_per_sequence, sample_next_after_softmax, sample_next_gumbel,
    temperature_probs_limit, temperature_probs_times_tau, train_stream_not_detached,
    train_stream_other_style,
)

PPL, TBPTT, TEMP, SAMPLE = "test_perplexity", "test_train_stream", "test_temperature_probs", "test_sample_next"

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (boolean indexing, 2 ** bits; max mask at tau 0; "
                       "Gumbel-max sampling; chunks as slices, tensor losses)",
        bodies={"perplexity": body(perplexity_indexing),
                "temperature_probs": body(temperature_probs_limit),
                "sample_next": body(sample_next_gumbel),
                "train_stream": body(train_stream_other_style)}),
    Submission(
        "per_sequence", "perplexity: the mean of per-sequence perplexities",
        bodies={"perplexity": body(perplexity_per_sequence)}, lost={PPL}),
    Submission(
        "not_detached", "train_stream carries the state without detaching it",
        bodies={"train_stream": body(train_stream_not_detached)}, lost={TBPTT}),
    Submission(
        "times_tau", "temperature_probs multiplies the logits by tau",
        bodies={"temperature_probs": body(temperature_probs_times_tau)}, lost={TEMP}),
    Submission(
        "after_softmax", "sample_next divides the probabilities by tau after the softmax",
        bodies={"sample_next": body(sample_next_after_softmax)}, lost={SAMPLE}),
]

REGRADE = "per_sequence"
