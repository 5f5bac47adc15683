"""Seeded, offline data for the course's tasks, one module per task
(``adding``: the adding problem; ``recall``: recall the first symbol), and
``stream``: the batch helpers they share (a long stream cut into rows and
T-step chunks for truncated BPTT; an endless stream of fresh batches), and
``padding``: sequences of different lengths collated into a padded batch with
its lengths and mask (lessons 06 on); ``text``: lesson 08's character corpora (a
Markov source with a known entropy rate, the course's own prose). Every
generator takes a ``torch.Generator`` or a seed, so a lesson's numbers are the
same on every machine."""
