"""Widget logic (plain, testable functions) and the ipywidgets built on it, one module per lesson."""
