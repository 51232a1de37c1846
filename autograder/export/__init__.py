"""Interop: an assignment written for this autograder, exported to other graders.

``autograder export nbgrader|otter ASSIGNMENT DIR`` writes the assignment in
nbgrader's source-assignment layout or in otter-grader's assign format. The
hidden tests travel with it unchanged: a test cell asks :mod:`runtime` to run
one hidden test against the notebook's own globals, through the same
request/reply protocol the sandboxed grader uses, so a test means the same
thing under every tool. Without a sandbox, though: those tools run student code
in the grading process, which is their model, not ours.
"""
