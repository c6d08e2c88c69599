"""How many transfers a month's matching takes at a time, by default.

Its own module, outside `domain.matching`: the settings import it, and every service imports
the settings, while only the services that match install the matching package's libraries
(rapidfuzz, scikit-learn). tests/unit/test_settings_imports.py holds that line.
"""

# ~1.3 GB peak at 80k transfers a month in chunks of this size, against 2.3 GB whole
# (`make bench-match-scale`); a chunk is whole booking days, so a busier day makes it larger.
DEFAULT_CHUNK = 20_000
