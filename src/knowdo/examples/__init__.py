"""The example programme: synthetic lay-worker PST scale-up data with a known truth.

>>> from knowdo.examples import generate_programme, write_project
>>> programme = generate_programme(persons=2_000)
>>> programme.truth.att("started_per_1000") > 0
True
"""

from knowdo.examples.parameters import DIMENSIONS, STRATEGIES, ExampleParameters
from knowdo.examples.programme import ExampleProgramme, generate_programme
from knowdo.examples.truth import OUTCOMES, ExampleTruth
from knowdo.examples.writer import write_project

__all__ = [
    "DIMENSIONS",
    "OUTCOMES",
    "STRATEGIES",
    "ExampleParameters",
    "ExampleProgramme",
    "ExampleTruth",
    "generate_programme",
    "write_project",
]
