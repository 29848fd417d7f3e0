"""Sampling: which frames a strategy wants (`strategies`: one file per strategy, in one registry that the
configuration's strategies come from), with what it remembers per source (`tracking`, `near_duplicates`,
`signatures`) and why it chose a datapoint, in words (`reasons`)."""
