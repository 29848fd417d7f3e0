"""The active-learning configuration: its format (`schema`), the stores that hold one per dataset (`store`), and
following a store while running (`follower`)."""
