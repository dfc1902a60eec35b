"""qa: verbatim, cited answers from a folder of documents, offline.

>>> from qa import Assistant, Settings
>>> Assistant(Settings(seeds_dir="seeds")).ask("Who coordinates the Progressive International?").answer  # doctest: +SKIP
'...'
"""

from .assistant import Assistant
from .config import Settings
from .errors import QAError
from .types import Answer, Citation, Passage

__all__ = ["Answer", "Assistant", "Citation", "Passage", "QAError", "Settings"]
