"""Seeded experiments too long to run inside a lesson's minute.

Each module trains its models once, with one command, and saves small
checkpoints (with their curves) under ``data/``; the lesson loads them and keeps
a short live run optional. Every module has the same shape (see
``rnncourse.experiments.settings``): a settings dataclass and its ``SETTINGS``,
``build_model(kind, settings, seed)``, ``train(kind, settings, *, ...)``, loaders.

- ``python -m rnncourse.experiments.adding``: lesson 03, RNN against LSTM on the
  adding problem (data/adding/);
- ``python -m rnncourse.experiments.longrange``: lesson 05, RNN, LSTM and GRU on
  first-symbol recall at several lengths (data/longrange/);
- ``python -m rnncourse.experiments.language_model``: lesson 08, character LSTMs on
  a Markov source and the course's prose, and a truncation-length / cell-type sweep
  (data/language_model/);
- ``python -m rnncourse.experiments.modern``: lesson 11, training time against T
  for GRU, minGRU and self-attention, generation cost against context length,
  minGRU against GRU on the adding problem (data/modern/).
"""
