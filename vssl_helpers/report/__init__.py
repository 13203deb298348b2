"""Tables and figures: Table I arithmetic, plots for the book."""
