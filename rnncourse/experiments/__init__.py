"""Seeded experiments too long to run inside a lesson's minute.

Each module trains its models once, with one command, and saves small
checkpoints (with their loss curves) under ``data/``; the lesson loads them and
keeps a short live run optional. ``python -m rnncourse.experiments.adding``
regenerates lesson 03's adding-problem checkpoints.
"""
