"""What grading produces for people: the batch summary, students' feedback pages, the instructor's report, grade exports.

Each is a pure function of results or of a :class:`~autograder.reports.cohort_view.CohortView`;
``commands`` is the command-line edge that reads the gradebook and writes files.
"""
