"""Widget logic (plain, testable functions) and the ipywidgets built on it, one
module per lesson (the lesson map, rnncourse.lessons, says which). The equations
come from rnncourse.functional; nothing here retypes a recurrent step."""
