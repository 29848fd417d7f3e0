"""Sampling: which frames a strategy wants (`strategies`), with what it remembers per source (`tracking`,
`near_duplicates`, `signatures`) and why it chose a datapoint, in words (`reasons`)."""
