"""Attributes that are not Engines: ``spin`` is a Tasks registry, ``engine`` a string."""

from spinach import Tasks

spin = Tasks()
engine = "not an engine"
