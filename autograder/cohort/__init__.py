"""Cohorts: a roster, dates and a late policy per run of the course; release to it, collect from it.

``config`` reads ``instructors/cohorts/<name>.toml``; ``late`` is the late-policy
arithmetic; ``collect`` takes submissions in; ``release`` writes student
materials; ``commands`` holds the CLI commands.
"""
