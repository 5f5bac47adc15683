"""Seeded, offline data for the course's tasks, one module per task:

- ``adding``: the adding problem (lesson 03);
- ``recall``: recall the first symbol (lesson 05);
- ``tagging``: a toy tagging language whose right context decides some tags,
  with the exact accuracy ceiling of a left-to-right tagger (lessons 06, 07);
- ``sentiment``: a classification task whose label can flip in the last few
  tokens, lengths 5 to 100 (lesson 07);
- ``text``: character corpora, a Markov source with a known entropy rate and
  the course's own prose (lesson 08);
- ``seq2seq``: vocabularies and reversal, copy and date-to-ISO pairs with their
  collate (lessons 09, 10);

and the helpers they share: ``stream`` (a long stream cut into rows and T-step
chunks for truncated BPTT; an endless stream of fresh batches) and ``padding``
(sequences of different lengths collated into a padded batch with its lengths
and mask, lessons 06 on). Every generator takes a ``torch.Generator`` or a
seed, so a lesson's numbers are the same on every machine."""
