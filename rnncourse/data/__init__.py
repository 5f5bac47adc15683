"""Seeded, offline data generators for the course's tasks, one module per task
(e.g. ``rnncourse.data.adding``). Every generator takes a ``torch.Generator``
or a seed, so a lesson's numbers are the same on every machine."""
