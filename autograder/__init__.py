"""Auto-grading for the transformer interpretability course.

The package follows the life of an assignment: ``authoring`` reads instructor
material, ``build`` compiles it into a student release and a grading bundle,
``grade`` runs submissions against hidden tests, and ``gradebook``/``report``
record and show the results.
"""

__version__ = "0.1.0"
