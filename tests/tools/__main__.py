"""`python -m tests.tools`: build every tool venv the interoperability tests use."""

from tests.tools import TOOL_REQUIREMENTS, tool_venv
from tests.tools.object_stores import install_azurite

for tool in TOOL_REQUIREMENTS:
    tool_venv(tool)
install_azurite()  # Azurite (npm) for the Azure Blob tests; a no-op when the pinned one is there
