"""rnncourse: the helper package of the rnncourse notebooks."""
